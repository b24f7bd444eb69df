"""``fingerplat serve`` out of file descriptors: it says so once, does not spin, recovers."""

from __future__ import annotations

import asyncio
import os
import resource
import socket
from pathlib import Path

from tests.e2e.conftest import Fingerplat, finger


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def test_finger_listener_out_of_descriptors_pauses_and_recovers(
    cli: Fingerplat, serve_factory
) -> None:
    cli("user", "add", "alice", ok=True)
    server = await serve_factory(cli.env, "--finger", "127.0.0.1:0", "--setter", "",
                                 "--web", "")
    pid = server.process.pid
    host, port = server.address("finger")
    assert "Login: alice" in await finger(host, port, "alice")

    # Room for a few more descriptors only, then more silent clients than that.
    in_use = len(os.listdir(f"/proc/{pid}/fd"))
    soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (in_use + 4, hard))
    held = []
    for _ in range(12):
        client = socket.create_connection((host, port))
        held.append(client)
    try:
        await asyncio.sleep(0.5)
        before = cpu_seconds(pid)
        await asyncio.sleep(2.5)
        # Paused, retrying once a second: not spinning on accept.
        assert cpu_seconds(pid) - before < 0.5
    finally:
        for client in held:
            client.close()
    resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
    assert "Login: alice" in await finger(host, port, "alice")

    code, _out, err = await server.stop()
    assert code == 0, err
    paused = [line for line in err.splitlines() if "cannot accept connections" in line]
    assert len(paused) == 1, err
    assert "too many open files" in paused[0]
    assert "accepting connections again" in err
    assert "Traceback" not in err
