#!/usr/bin/env python3
"""How long a status change takes to show through finger on the other nodes.

``--nodes N`` real ``fingerplat serve`` processes (default 2) on one fresh
PostgreSQL database (read cache on, as by default). Every node holds the old
answer in its cache before each change (it is fingered first), so every round
measures an invalidation (LISTEN/NOTIFY delivery, cache invalidation, one
finger round trip), not a cold read. Each node is then fingered in a tight
loop (the nodes in turn, one query in flight) until its answer shows the new
status; a round's figure is the time from the write's acknowledgement until
the *last* node shows it.

Directly (the default): the status is set through node A's setter and every
other node is fingered directly.

``--haproxy``: Debian's HAProxy in front of the nodes, configured as the e2e
test configures it (tests/support/haproxy.py: PROXY v2 to finger and setter,
``option forwardfor`` to the web, round robin, health checks). Changes
alternate between the setter (a new connection each, AUTH and SET) and the
JSON API (PUT .../status), both through the balancer, so they land on
whichever node round robin picks; every node is fingered through the
balancer too (one frontend per node), with its PROXY header.

    .venv/bin/python bench/crossnode.py --changes 200
    .venv/bin/python bench/crossnode.py --changes 200 --nodes 3 --haproxy
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # tests.support: the same HAProxy set-up as the e2e test

from tests.support.haproxy import (  # noqa: E402
    NODE_HEADER,
    Frontends,
    finger_through,
    haproxy_config,
    running_haproxy,
    until_every_node_served,
)

LISTEN_RE = re.compile(r"^(finger|setter|web) listening on (?:https?://)?(\S+):(\d+)$")
GIVE_UP = 5.0  # seconds a node may take to show a change before the run is failed

# All queries come from 127.0.0.1: lift the per-address rate limit.
CONFIG = "[finger]\nrate_limit = 100000000\naccess_log = false\n"
PROXIED = """
[network]
trusted_proxies = ["127.0.0.1/32"]
[finger]
rate_limit = 100000000
access_log = false
proxy_protocol = true
[setter]
proxy_protocol = true
"""

Ports = dict[str, tuple[str, int]]


def fingerplat() -> str:
    return str(Path(sys.executable).parent / "fingerplat")


async def finger(port: int, query: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(query.encode() + b"\r\n")
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data.decode()


async def start(url: str, config: str, web: bool) -> tuple[asyncio.subprocess.Process, Ports]:
    proc = await asyncio.create_subprocess_exec(
        fingerplat(), "--database-url", url, "serve", "--config", config, "--finger", "127.0.0.1:0",
        "--setter", "127.0.0.1:0", "--web", "127.0.0.1:0" if web else "",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
    ports: Ports = {}
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
        if not line:
            raise SystemExit("serve exited before it was ready")
        match = LISTEN_RE.match(line)
        if match:
            ports[match.group(1)] = (match.group(2), int(match.group(3)))
        if line == "ready":
            return proc, ports


class SetterSession:
    """One setter connection: a line out, a reply line in."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int, token: str) -> SetterSession:
        session = cls(*await asyncio.open_connection("127.0.0.1", port))
        if not (await session.ask(f"AUTH {token}")).startswith("+OK"):
            raise SystemExit("setter refused the token")
        return session

    async def ask(self, line: str) -> str:
        self.writer.write(line.encode() + b"\r\n")
        return (await asyncio.wait_for(self.reader.readline(), 10)).decode().strip()

    def close(self) -> None:
        self.writer.close()


async def seen_everywhere(readers: list[Callable[[], Awaitable[str]]], status: str,
                          began: float) -> float:
    """Milliseconds from ``began`` until the last reader's answer shows ``status``.

    The readers are asked in turn, one query in flight at a time (those that
    showed it are left out): on a small machine, parallel tight loops would
    take the CPU the nodes need to deliver the change they are waiting for.
    """
    waiting = list(readers)
    while waiting:
        waiting = [read for read in waiting if f"Status: {status} " not in await read()]
        if waiting and time.perf_counter() - began > GIVE_UP:
            raise SystemExit(f"{status!r} not visible on a node after {GIVE_UP} s")
    return (time.perf_counter() - began) * 1000


def summary(took: list[float]) -> str:
    took = sorted(took)
    p99 = took[min(len(took) - 1, int(len(took) * 0.99))]
    return (f"median {statistics.median(took):.1f} ms, p99 {p99:.1f} ms, "
            f"max {took[-1]:.1f} ms")


async def direct(nodes: list[Ports], token: str, changes: int) -> None:
    """Set through node A's setter, finger every other node directly."""
    setter = await SetterSession.open(nodes[0]["setter"][1], token)
    readers = [lambda port=node["finger"][1]: finger(port, "alice") for node in nodes[1:]]
    took: list[float] = []
    for i in range(changes):
        status = f"change {i}"
        await asyncio.gather(*(read() for read in readers))  # they cache the old answer
        assert (await setter.ask(f"SET alice {status}")).startswith("+OK")
        took.append(await seen_everywhere(readers, status, time.perf_counter()))
    setter.close()
    others = "node B" if len(nodes) == 2 else f"every other node ({len(nodes) - 1})"
    print(f"{len(took)} changes through node A's setter, seen by {others}'s finger: "
          f"{summary(took)}")


async def balanced(nodes: list[Ports], token: str, changes: int, workdir: Path) -> None:
    """Writes and reads through HAProxy; writes alternate between setter and JSON API."""
    front = Frontends.free(len(nodes))
    config = workdir / "haproxy.cfg"
    config.write_text(haproxy_config(front, nodes))
    async with running_haproxy(config):
        await until_every_node_served(front, "alice", "Login:")
        readers = [lambda port=port: finger_through(port, "alice") for port in front.finger_each]
        url = f"http://127.0.0.1:{front.web}/api/v1/tenants/default/users/alice/status"
        by_channel: dict[str, list[float]] = {"setter": [], "JSON API": []}
        writers: collections.Counter[str] = collections.Counter()
        # A new connection per request, like separate clients: round robin moves on.
        async with aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(force_close=True),
            timeout=aiohttp.ClientTimeout(total=10),
            headers={"Authorization": f"Bearer {token}"},
        ) as api:
            for i in range(changes):
                status = f"change {i}"
                await asyncio.gather(*(read() for read in readers))  # they cache the old answer
                if i % 2 == 0:
                    setter = await SetterSession.open(front.setter, token)
                    answer = await setter.ask(f"SET alice {status}")
                    began = time.perf_counter()
                    setter.close()
                    assert answer.startswith("+OK"), answer
                    channel = "setter"
                else:
                    async with api.put(url, json={"status": status}) as reply:
                        assert reply.status == 200, await reply.text()
                        began = time.perf_counter()
                        writers[reply.headers.get(NODE_HEADER, "?")] += 1
                    channel = "JSON API"
                by_channel[channel].append(await seen_everywhere(readers, status, began))
    took = [t for series in by_channel.values() for t in series]
    print(f"{len(took)} changes through HAProxy, seen by finger on all {len(nodes)} nodes "
          f"through HAProxy: {summary(took)}")
    for channel, series in by_channel.items():
        print(f"  written through the {channel} ({len(series)}): {summary(series)}")
    print("  JSON API writes landed on: " + ", ".join(
        f"{node} {count}" for node, count in sorted(writers.items())))


async def measure(url: str, token: str, args: argparse.Namespace, workdir: Path) -> None:
    config = workdir / "node.toml"
    config.write_text(PROXIED if args.haproxy else CONFIG)
    procs: list[asyncio.subprocess.Process] = []
    try:
        nodes: list[Ports] = []
        for _ in range(args.nodes):
            proc, ports = await start(url, str(config), web=args.haproxy)
            procs.append(proc)
            nodes.append(ports)
        if args.haproxy:
            await balanced(nodes, token, args.changes, workdir)
        else:
            await direct(nodes, token, args.changes)
    finally:
        for proc in procs:
            proc.terminate()
            await proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--nodes", type=int, default=2, help="serve processes (at least 2)")
    parser.add_argument("--haproxy", action="store_true",
                        help="write and read through Debian's haproxy in front of the nodes")
    parser.add_argument("--pg", default="postgres@127.0.0.1:5432")
    args = parser.parse_args()
    if args.nodes < 2:
        parser.error("--nodes must be at least 2")
    name = f"fingerplat_crossnode_{os.getpid()}"
    admin = ["psql", f"postgresql://{args.pg}/postgres", "-q", "-c"]
    subprocess.run([*admin, f'CREATE DATABASE "{name}"'], check=True)
    url = f"postgresql+asyncpg://{args.pg}/{name}"
    cli = [fingerplat(), "--database-url", url]
    try:
        subprocess.run([*cli, "db", "upgrade"], check=True, capture_output=True)
        subprocess.run([*cli, "user", "add", "alice"], check=True, capture_output=True)
        token = subprocess.run([*cli, "token", "create", "--user", "alice"], check=True,
                               capture_output=True, text=True).stdout.strip()
        with tempfile.TemporaryDirectory(prefix="fingerplat-crossnode-") as workdir:
            asyncio.run(measure(url, token, args, Path(workdir)))
    finally:
        subprocess.run([*admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                       check=False)


if __name__ == "__main__":
    main()
