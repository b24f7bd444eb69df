#!/usr/bin/env python3
"""How long a status change takes to show through finger on another node.

Two real ``fingerplat serve`` processes on one fresh PostgreSQL database
(read cache on, as by default). For each of ``--changes`` rounds the status
is set through node A's setter, and node B is fingered in a tight loop until
its answer shows the new status: the time from node A's ``+OK`` to that
answer is the change-to-answer latency (LISTEN/NOTIFY delivery, cache
invalidation, one finger round trip). Node B's cache holds the old answer
before every change (it is asked first), so every round measures an
invalidation, not a cold read.

    .venv/bin/python bench/crossnode.py --changes 200
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LISTEN_RE = re.compile(r"^(finger|setter) listening on (\S+):(\d+)$")


def fingerplat() -> str:
    return str(Path(sys.executable).parent / "fingerplat")


async def finger(port: int, query: str) -> str:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(query.encode() + b"\r\n")
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    return data.decode()


async def start(url: str, config: str) -> tuple[asyncio.subprocess.Process, dict[str, int]]:
    proc = await asyncio.create_subprocess_exec(
        fingerplat(), "--database-url", url, "serve", "--config", config, "--finger", "127.0.0.1:0",
        "--setter", "127.0.0.1:0", "--web", "", stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL)
    ports: dict[str, int] = {}
    assert proc.stdout is not None
    while True:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode().strip()
        if not line:
            raise SystemExit("serve exited before it was ready")
        match = LISTEN_RE.match(line)
        if match:
            ports[match.group(1)] = int(match.group(3))
        if line == "ready":
            return proc, ports


async def measure(url: str, token: str, changes: int, config: str) -> None:
    nodes = []
    try:
        nodes = [await start(url, config), await start(url, config)]
        (_, a), (_, b) = nodes
        reader, writer = await asyncio.open_connection("127.0.0.1", a["setter"])

        async def ask(line: str) -> str:
            writer.write(line.encode() + b"\r\n")
            return (await asyncio.wait_for(reader.readline(), 10)).decode().strip()

        assert (await ask(f"AUTH {token}")).startswith("+OK")
        took: list[float] = []
        for i in range(changes):
            status = f"change {i}"
            await finger(b["finger"], "alice")  # B caches the old answer
            assert (await ask(f"SET alice {status}")).startswith("+OK")
            began = time.perf_counter()
            while f"Status: {status} " not in await finger(b["finger"], "alice"):
                if time.perf_counter() - began > 5:
                    raise SystemExit(f"change {i} not visible on node B after 5 s")
            took.append((time.perf_counter() - began) * 1000)
        took.sort()
        p99 = took[min(len(took) - 1, int(len(took) * 0.99))]
        print(f"{len(took)} changes through node A's setter, seen by node B's finger: "
              f"median {statistics.median(took):.1f} ms, p99 {p99:.1f} ms, "
              f"max {took[-1]:.1f} ms")
        writer.close()
    finally:
        for proc, _ in nodes:
            proc.terminate()
            await proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--changes", type=int, default=200)
    parser.add_argument("--pg", default="postgres@127.0.0.1:5432")
    args = parser.parse_args()
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
        with tempfile.NamedTemporaryFile("w", suffix=".toml") as config:
            # All queries come from 127.0.0.1: lift the per-address rate limit.
            config.write("[finger]\nrate_limit = 100000000\naccess_log = false\n")
            config.flush()
            asyncio.run(measure(url, token, args.changes, config.name))
    finally:
        subprocess.run([*admin, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'],
                       check=False)


if __name__ == "__main__":
    main()
