#!/usr/bin/env python3
"""Idle connections held open while other clients are answered at full speed.

Starts ``fingerplat serve`` on a seeded database (``bench/seed.py``), opens
``--idle`` connections that send nothing (idle_timeout raised so they stay),
then runs the load generator against the same port and reports its q/s and
server CPU per query next to a run without the idle connections, and the
server's resident memory (VmRSS) with all of them open.

    .venv/bin/python bench/idle.py sqlite+aiosqlite:////tmp/b.db --users 100000 --idle 10000
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
LISTEN_RE = re.compile(r"finger listening on 127\.0\.0\.1:(\d+)")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def load(port: int, users: int, pid: int, seconds: float) -> dict:
    out = subprocess.run(
        [sys.executable, str(HERE / "loadgen.py"), "--port", str(port), "--users", str(users),
         "-d", str(seconds), "-w", "1", "--check", "--json", "--server-pid", str(pid)],
        capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database_url")
    parser.add_argument("--users", type=int, default=100000)
    parser.add_argument("--idle", type=int, default=10000)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--prime", type=float, default=30)
    args = parser.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, args.idle + 1000), hard))
    with tempfile.NamedTemporaryFile("w", suffix=".toml") as config:
        config.write("[finger]\nrate_limit = 100000000\naccess_log = false\n"
                     f"max_connections = {args.idle + 1000}\nidle_timeout = 600\n"
                     # every client is 127.0.0.1: its share is all of them
                     f"max_connections_per_address = {args.idle + 1000}\n")
        config.flush()
        serve = subprocess.Popen(
            [str(Path(sys.executable).parent / "fingerplat"), "--database-url",
             args.database_url, "serve", "--config", config.name, "--finger", "127.0.0.1:0",
             "--setter", "", "--web", ""], stdout=subprocess.PIPE, text=True)
        try:
            assert serve.stdout is not None
            port = 0
            for line in serve.stdout:
                match = LISTEN_RE.search(line)
                if match:
                    port = int(match.group(1))
                if line.strip() == "ready":
                    break
            load(port, args.users, serve.pid, args.prime)  # fill the read cache
            before = load(port, args.users, serve.pid, args.duration)
            rss_before = rss_mb(serve.pid)
            idle = []
            for _ in range(args.idle):
                idle.append(socket.create_connection(("127.0.0.1", port)))
            time.sleep(1)
            rss_idle = rss_mb(serve.pid)
            during = load(port, args.users, serve.pid, args.duration)
            alive = 0
            for sock in idle:
                sock.setblocking(False)
                try:
                    sock.recv(1)  # b"" or data: the server closed or answered it
                except BlockingIOError:
                    alive += 1  # still open, nothing sent: idle as it should be
                sock.close()
            for label, run in (("without idle connections", before),
                               (f"with {args.idle:,} idle connections", during)):
                print(f"{label}: {run['qps']:,.0f} q/s, p99 {run['p99_ms']:.1f} ms, "
                      f"{run['errors']} errors, {run['server_cpu_us_per_query']:.1f} µs/q")
            print(f"idle connections still open at the end: {alive:,} of {args.idle:,}")
            print(f"server resident memory: {rss_before:.0f} MB before, "
                  f"{rss_idle:.0f} MB with the idle connections open")
        finally:
            serve.terminate()
            serve.wait(30)


if __name__ == "__main__":
    main()
