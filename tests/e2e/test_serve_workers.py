"""``fingerplat serve --workers N`` as real processes, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from fingerplat.domain.model import Context
from fingerplat.service import FingerplatService
from tests.e2e.conftest import Fingerplat, finger

# Queries per round, spread over both workers by the kernel (SO_REUSEPORT).
# Each worker allows one address 20 queries a second with a burst of 40
# (the default rate_limit): two rounds landing mostly on one worker must
# stay under that, or "too many queries" answers make the test flaky (it
# was 40 a round, polled every 50 ms: 1 run in 12 failed that way).
QUERIES = 16
POLL_SECONDS = 0.5


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


async def test_two_workers_share_one_port_and_see_every_change(
    cli: Fingerplat, serve_factory, notifying_service: FingerplatService, operator: Context
) -> None:
    service = notifying_service
    await service.users.add_user(operator, None, "alice", full_name="Alice Liddell")
    await service.users.set_status(operator, None, "alice", "first")
    server = await serve_factory(cli.env, "--workers", "2", "--finger", "127.0.0.1:0",
                                 "--setter", "", "--web", "127.0.0.1:0")
    # Port 0 became one port, printed once, shared by both workers.
    assert len(server.addresses["finger"]) == 1 and len(server.addresses["web"]) == 1
    workers = children(server.process.pid)
    assert len(workers) == 2

    host, port = server.address("finger")
    answers = await asyncio.gather(*(finger(host, port, "alice") for _ in range(QUERIES)))
    assert all("Status: first" in a for a in answers), answers

    # A change made by another process (this test's) reaches both workers' caches.
    await service.users.set_status(operator, None, "alice", "second")
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        answers = await asyncio.gather(*(finger(host, port, "alice") for _ in range(QUERIES)))
        if all("Status: second" in a for a in answers) or loop.time() > deadline:
            break
        await asyncio.sleep(POLL_SECONDS)
    assert all("Status: second" in a for a in answers), answers

    code, _rest, err = await server.stop()
    assert code == 0, err
    for pid in workers:
        assert not os.path.exists(f"/proc/{pid}") or "zombie" in Path(
            f"/proc/{pid}/status").read_text().lower()


async def test_a_busy_port_fails_the_start_with_one_line(bare_cli: Fingerplat) -> None:
    """The database plays no part in it: run once, on the embedded default."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        from tests.e2e.conftest import run_serve_to_exit

        code, _out, err = await run_serve_to_exit(bare_cli.env, "--workers", "2", "--finger",
                                                  f"127.0.0.1:{port}", "--setter", "",
                                                  "--web", "")
    assert code != 0
    assert f"finger: cannot listen on 127.0.0.1:{port}" in err and "Traceback" not in err
