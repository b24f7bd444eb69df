#!/usr/bin/env python3
"""CPU that ``fingerplat serve`` burns while out of file descriptors (it should pause, not spin).

Makes a fresh SQLite database, starts ``fingerplat serve`` with a finger
listener, lowers the process's descriptor limit to a few above what it uses,
opens more silent clients than that, and once the server has said ``cannot
accept connections`` measures its CPU time (user+system, /proc) over
``--seconds`` of wall time. A server that retries ``accept`` in a loop shows
about one CPU second per second; one that pauses and retries once a second
shows next to nothing.

    .venv/bin/python bench/fd_exhaustion.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FINGERPLAT = str(Path(sys.executable).parent / "fingerplat")
LISTEN_RE = re.compile(r"finger listening on 127\.0\.0\.1:(\d+)")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="time measured while paused")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/fd.db"
        subprocess.run([FINGERPLAT, "--database-url", url, "db", "upgrade"], check=True,
                       capture_output=True)
        serve = subprocess.Popen(
            [FINGERPLAT, "--database-url", url, "serve", "--finger", "127.0.0.1:0",
             "--setter", "", "--web", ""],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        held: list[socket.socket] = []
        try:
            assert serve.stdout is not None and serve.stderr is not None
            port = 0
            for line in serve.stdout:
                if match := LISTEN_RE.search(line):
                    port = int(match.group(1))
                if line.strip() == "ready":
                    break
            in_use = len(os.listdir(f"/proc/{serve.pid}/fd"))
            _soft, hard = resource.prlimit(serve.pid, resource.RLIMIT_NOFILE)
            resource.prlimit(serve.pid, resource.RLIMIT_NOFILE, (in_use + 4, hard))
            held = [socket.create_connection(("127.0.0.1", port)) for _ in range(12)]
            for line in serve.stderr:
                if "cannot accept connections" in line:
                    break
            before, started = cpu_seconds(serve.pid), time.monotonic()
            time.sleep(args.seconds)
            used, wall = cpu_seconds(serve.pid) - before, time.monotonic() - started
            print(f"paused out of descriptors: {used:.2f} CPU s in {wall:.1f} s of wall time "
                  f"({used / wall:.3f} CPU s per second)")
        finally:
            for client in held:
                client.close()
            serve.terminate()
            serve.wait(30)


if __name__ == "__main__":
    main()
