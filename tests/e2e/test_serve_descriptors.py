"""``fingerplat serve`` out of file descriptors: it says so once, loses no client, recovers.

That it does not spin on ``accept`` while paused is a CPU figure, measured by
``bench/fd_exhaustion.py`` (numbers in bench/README.md), not asserted here.
"""

from __future__ import annotations

import asyncio
import os
import resource
import socket

from fingerplat.domain.model import Context
from fingerplat.service import FingerplatService
from tests.e2e.conftest import Fingerplat, Server, finger


async def stderr_until(server: Server, text: str, seen: list[str], timeout: float = 15) -> None:
    """Read the running server's stderr into ``seen`` until a line holds ``text``."""
    assert server.process.stderr is not None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not any(text in line for line in seen):
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise AssertionError(f"serve never said {text!r}; stderr so far {seen}")
        raw = await asyncio.wait_for(server.process.stderr.readline(), remaining)
        if not raw:
            raise AssertionError(f"serve exited before saying {text!r}; stderr {seen}")
        seen.append(raw.decode().rstrip("\n"))


async def answer_on(client: socket.socket, query: bytes, timeout: float = 15) -> bytes:
    """Send ``query`` on a connection opened earlier and read the answer to EOF."""
    reader, writer = await asyncio.open_connection(sock=client)
    try:
        writer.write(query)
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def test_finger_listener_out_of_descriptors_pauses_and_recovers(
    cli: Fingerplat, serve_factory, service: FingerplatService, operator: Context
) -> None:
    await service.users.add_user(operator, None, "alice")
    server = await serve_factory(cli.env, "--finger", "127.0.0.1:0", "--setter", "",
                                 "--web", "")
    pid = server.process.pid
    host, port = server.address("finger")
    assert "Login: alice" in await finger(host, port, "alice")

    # Room for a few more descriptors only, then more silent clients than that.
    in_use = len(os.listdir(f"/proc/{pid}/fd"))
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 4, hard))
    held = [socket.create_connection((host, port)) for _ in range(12)]
    stderr: list[str] = []
    try:
        await stderr_until(server, "cannot accept connections", stderr)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        # Every client, accepted before the shortage or queued through it, is answered.
        answers = await asyncio.gather(*(answer_on(c, b"alice\r\n") for c in held))
        assert all(b"Login: alice" in answer for answer in answers), answers
    finally:
        for client in held:
            client.close()
    assert "Login: alice" in await finger(host, port, "alice")

    code, _out, rest = await server.stop()
    assert code == 0, rest
    err = "\n".join(stderr) + "\n" + rest
    paused = [line for line in err.splitlines() if "cannot accept connections" in line]
    assert len(paused) == 1, err
    assert "too many open files" in paused[0]
    assert "accepting connections again" in err
    assert "Traceback" not in err
