"""How long `fingerplat import users-file` takes for a big file, on SQLite and PostgreSQL.

    .venv/bin/python bench/import_users_file.py [--lines 100000] [--db sqlite|postgresql|both]
                                                [--pg postgres@127.0.0.1:5432]

For each database it makes a fresh one (`fingerplat db upgrade`), then times
the real command four times: the first import (every line creates a user
with a status), the same file again (everything unchanged, nothing written),
a file where every tenth status changed ("tenth") and a file where every
status changed (every user updated). It prints wall
time, the wall time minus the command's start (the median of three imports of
an empty file: start-up, schema check, nothing to write) and the CPU time of
the fingerplat process (user+system), which is the
part that does not depend on how busy the machine is, and the 1-minute load
average before the run (the machine is shared: compare runs made at similar
loads). On PostgreSQL it also prints the CPU time of the database backends
that served the command (sampled from /proc while it runs, so the server
must be local). Temporary files and the PostgreSQL database are removed at the end.

To time another checkout in the same sitting (before/after a change), put it
first on the path of the command: the fingerplat console script does not have
the current directory on its path, so this runs that checkout's code:

    git archive HEAD~1 fingerplat cli | tar -x -C /tmp/before
    PYTHONPATH=/tmp/before:/tmp/before/cli .venv/bin/python bench/import_users_file.py
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

FINGERPLAT = str(Path(sys.executable).parent / "fingerplat")


class BackendCPU:
    """CPU seconds of the PostgreSQL backends serving one database while a command runs.

    The command's backends exit with it, so their ``/proc`` counters are
    sampled every 20 ms and the last value seen of each is summed (at most
    one interval of each backend's CPU is missed). Local servers only.
    """

    def __init__(self, dbname: str | None) -> None:
        self.marker = f" {dbname} ".encode() if dbname else None
        self.seen: dict[int, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        tick = os.sysconf("SC_CLK_TCK")
        while not self.stop.wait(0.02):
            for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
                try:
                    with open(f"/proc/{pid}/cmdline", "rb") as f:
                        cmd = f.read()
                    if not cmd.startswith(b"postgres: ") or self.marker not in cmd:
                        continue
                    with open(f"/proc/{pid}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                self.seen[pid] = (int(fields[11]) + int(fields[12])) / tick

    def __enter__(self) -> BackendCPU:
        if self.marker is not None:
            self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.marker is not None:
            self.thread.join()

    @property
    def seconds(self) -> float | None:
        return sum(self.seen.values()) if self.marker is not None else None


def run_cpu(env: dict[str, str], *args: str, dbname: str | None = None
            ) -> tuple[float, float, str, float | None]:
    """(wall seconds, CPU seconds of the fingerplat process, its stdout, CPU seconds of
    the PostgreSQL backends of ``dbname`` or None)."""
    before = os.times()
    start = time.perf_counter()
    with BackendCPU(dbname) as backends:
        process = subprocess.run([FINGERPLAT, *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = os.times()  # the child was waited for: its CPU time is in children_*
    cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system)
    if process.returncode not in (0, 1):
        raise SystemExit(f"fingerplat {' '.join(args)} failed: {process.stderr.strip()}")
    return wall, cpu, process.stdout.strip(), backends.seconds


def bench(label: str, url: str, workdir: Path, lines: int, dbname: str | None = None) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FINGERPLAT_")}
    env["FINGERPLAT_DATABASE_URL"] = url
    subprocess.run([FINGERPLAT, "db", "upgrade"], env=env, check=True, capture_output=True)
    first = workdir / "users"
    tenth = workdir / "users-tenth-changed"
    changed = workdir / "users-changed"
    with first.open("w") as f:
        f.writelines(f"user{i}: status number {i}\n" for i in range(lines))
    with tenth.open("w") as f:
        f.writelines(f"user{i}: {'changed' if i % 10 == 0 else 'status'} number {i}\n"
                     for i in range(lines))
    with changed.open("w") as f:
        f.writelines(f"user{i}: changed status {i}\n" for i in range(lines))
    # The command's fixed cost: start-up, configuration, schema check and an empty
    # import, timed apart so the import itself can be read as the rest.
    empty = workdir / "users-empty"
    empty.write_text("")
    starts = sorted(run_cpu(env, "import", "users-file", str(empty))[0] for _ in range(3))
    print(f"{label:<11} {'start':<10} {starts[1]:7.2f} s wall (median of 3: the command "
          "with an empty file)", flush=True)
    for name, path in (("create", first), ("unchanged", first), ("tenth", tenth),
                       ("update", changed)):
        load = os.getloadavg()[0]
        wall, cpu, out, db_cpu = run_cpu(env, "import", "users-file", str(path), dbname=dbname)
        summary = out.splitlines()[0].split(": ", 1)[-1]
        server = f"   {db_cpu:5.2f} s backend CPU" if db_cpu is not None else ""
        print(f"{label:<11} {name:<10} {wall:7.2f} s wall {cpu:7.2f} s CPU{server}   "
              f"{wall - starts[1]:6.2f} s minus start   load {load:4.2f}   {summary}",
              flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--pg", default="postgres@127.0.0.1:5432")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fingerplat-import-bench-"))
    pg_name = f"fingerplat_import_bench_{os.getpid()}"
    pg_admin = f"postgresql://{args.pg}/postgres"
    try:
        if args.db in ("sqlite", "both"):
            bench("sqlite", f"sqlite+aiosqlite:///{workdir / 'bench.db'}", workdir, args.lines)
        if args.db in ("postgresql", "both"):
            import asyncio

            import asyncpg

            async def admin(sql: str) -> None:
                conn = await asyncpg.connect(pg_admin)
                try:
                    await conn.execute(sql)
                finally:
                    await conn.close()

            asyncio.run(admin(f'CREATE DATABASE "{pg_name}"'))
            try:
                bench("postgresql", f"postgresql+asyncpg://{args.pg}/{pg_name}", workdir,
                      args.lines, pg_name)
            finally:
                asyncio.run(admin(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
