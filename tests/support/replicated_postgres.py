"""A primary and a streaming standby of the test's own, for failover tests and the bench.

Two throwaway clusters on free ports (never the shared server on 5432): the
primary from initdb, the standby from ``pg_basebackup -R`` streaming from it.
The primary runs with ``synchronous_standby_names = '*'``: a commit returns only
once the standby has it, so every write acknowledged before the primary
stops is on the standby when it is promoted (no acknowledged write lost).
Run as the ``postgres`` OS user when the tests run as root, like
tests/support/throwaway_postgres.py. :meth:`destroy` stops both and removes
everything, whatever state they are in.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ReplicatedPostgres:
    """``start()``, then ``url`` (both hosts, read-write target), ``stop_primary()``,
    ``promote_standby()``, and ``destroy()`` in a ``finally``."""

    def __init__(self) -> None:
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = candidates[-1] if candidates else shutil.which("initdb")
        if not initdb:
            raise RuntimeError("PostgreSQL binaries are missing: apt-get install postgresql")
        self.bindir = Path(initdb).parent
        self.base = Path(tempfile.mkdtemp(prefix="fingerplat-failover-"))
        self.primary_data = self.base / "primary"
        self.standby_data = self.base / "standby"
        self.primary_port = _free_port()
        self.standby_port = _free_port()
        while self.standby_port == self.primary_port:
            self.standby_port = _free_port()
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", "postgres"],
                               check=True)
            shutil.chown(self.base, "postgres")
            self.run_as = ["runuser", "-u", "postgres", "--"]

    @property
    def url(self) -> str:
        """The SPEC's multi-host form: primary first, then the standby."""
        return (f"postgresql+asyncpg://postgres@127.0.0.1:{self.primary_port},"
                f"127.0.0.1:{self.standby_port}/postgres?target_session_attrs=read-write")

    def single_url(self, port: int) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run([*self.run_as, *args], capture_output=True, timeout=timeout,
                                text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {result.stderr.strip()}")

    def _pg_ctl(self, data: Path, *args: str) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(data), *args)

    def _start(self, data: Path, port: int, log: str, *options: str) -> None:
        self._pg_ctl(data, "-l", str(self.base / log), "-w", "-o",
                     " ".join((f"-p {port} -k {self.base} -c listen_addresses=127.0.0.1",
                               *options)), "start")

    def start(self) -> None:
        """initdb and start the primary, base-backup and start the standby streaming."""
        self._run(str(self.bindir / "initdb"), "-D", str(self.primary_data), "-U", "postgres",
                  "--auth=trust", "--no-sync", "-E", "UTF8")
        with open(self.primary_data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# fingerplat failover test\nwal_level = replica\n"
                       "max_wal_senders = 4\nfsync = off\n")
        with open(self.primary_data / "pg_hba.conf", "a", encoding="utf-8") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        # On the command line, not in postgresql.conf: pg_basebackup copies the file,
        # and a promoted standby that waited for a standby of its own (it has
        # none) would hold every commit until the client's command timeout.
        self._start(self.primary_data, self.primary_port, "primary.log",
                    "-c synchronous_standby_names='*'")
        self._run(str(self.bindir / "pg_basebackup"), "-h", "127.0.0.1", "-p",
                  str(self.primary_port), "-U", "postgres", "-D", str(self.standby_data),
                  "-R", "-X", "stream", "--no-sync")
        self._start(self.standby_data, self.standby_port, "standby.log")

    def stop_primary(self) -> None:
        """``pg_ctl stop -m fast``: every session of the primary is ended."""
        self._pg_ctl(self.primary_data, "-m", "fast", "-w", "stop")

    def promote_standby(self) -> None:
        """``pg_ctl promote``, waiting until the standby accepts writes."""
        self._pg_ctl(self.standby_data, "-w", "promote")

    def destroy(self) -> None:
        for data in (self.standby_data, self.primary_data):
            if data.exists():
                with contextlib.suppress(Exception):
                    subprocess.run([*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(data),
                                    "-m", "immediate", "-w", "stop"], capture_output=True,
                                   check=False, timeout=30)
        shutil.rmtree(self.base, ignore_errors=True)


def wait_until(condition: object, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition()`` until true or the deadline; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():  # type: ignore[operator]
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
