"""How fast each way of asking "did another process change this SQLite file?" is.

    .venv/bin/python bench/sqlite_change_check.py [--seconds 2]

The read cache asks this once per event-loop iteration on SQLite (see
``fingerplat/repository/sqlite_watch.py``). It compares, on a fresh WAL database:

- ``shm mmap``: fingerplat's watcher, a 96-byte read of the mapped ``-shm``
  header (no system call);
- ``PRAGMA data_version``: SQLite's documented way, on a connection held open
  by the watcher (a statement step through the sqlite3 module);
- ``-wal stat+pread``: the watcher's fallback when the mapping cannot be made.

It prints calls per second and nanoseconds per call of each, and checks first
that each one notices a commit made by another process.
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Hashable
from pathlib import Path

from fingerplat.repository.sqlite_watch import (
    DataVersionWatch,
    ShmWatch,
    WalWatch,
)


def commit_elsewhere(path: Path) -> None:
    code = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "c.execute('INSERT INTO t VALUES (1)'); c.commit(); c.close()")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, timeout=30)


def rate(check: Callable[[], Hashable], seconds: float) -> float:
    """Calls per second of ``check``, in batches of 1,000 until ``seconds`` pass."""
    calls = 0
    start = time.perf_counter()
    deadline = start + seconds
    while (now := time.perf_counter()) < deadline:
        for _ in range(1000):
            check()
        calls += 1000
    return calls / (now - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="time per method")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        database = Path(tmp) / "bench.db"
        conn = sqlite3.connect(database)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE t (x INTEGER)")
        conn.commit()
        conn.close()
        shm = ShmWatch(database)
        assert shm() is not None and shm.mapped, "the -shm header could not be mapped"
        methods: dict[str, Callable[[], Hashable]] = {
            "shm mmap": shm,
            "PRAGMA data_version": DataVersionWatch(database),
            "-wal stat+pread": WalWatch(str(database) + "-wal"),
        }
        for name, check in methods.items():
            before = check()
            commit_elsewhere(database)
            assert check() != before, f"{name} missed a commit by another process"
        print(f"{'method':<22} {'calls/s':>12} {'ns/call':>9}")
        for name, check in methods.items():
            per_second = rate(check, args.seconds)
            print(f"{name:<22} {per_second:>12,.0f} {1e9 / per_second:>9,.0f}")
        for check in methods.values():
            close = getattr(check, "close", None)
            if close is not None:
                close()


if __name__ == "__main__":
    main()
