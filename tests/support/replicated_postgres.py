"""A primary and a streaming standby of the test's own, for failover tests and the bench.

Two throwaway clusters on free ports (never the shared server on 5432): the
primary from initdb, the standby from ``pg_basebackup -R`` streaming from it.
The primary runs with ``synchronous_standby_names = '*'``: a commit returns only
once the standby has it, so every write acknowledged before the primary
stops is on the standby when it is promoted (no acknowledged write lost).
Both from tests/support/local_postgres.py's recipe. :meth:`destroy` stops
both and removes everything, whatever state they are in.
"""

from __future__ import annotations

import contextlib
import time

from tests.support.local_postgres import LocalPostgres, free_port


class ReplicatedPostgres:
    """``start()``, then ``url`` (both hosts, read-write target), ``stop_primary()``,
    ``promote_standby()``, and ``destroy()`` in a ``finally``."""

    def __init__(self) -> None:
        self._local = LocalPostgres("fingerplat-failover-")
        self.base = self._local.base
        self.primary_data = self.base / "primary"
        self.standby_data = self.base / "standby"
        self.primary_port = free_port()
        self.standby_port = free_port()
        while self.standby_port == self.primary_port:
            self.standby_port = free_port()

    @property
    def url(self) -> str:
        """The SPEC's multi-host form: primary first, then the standby."""
        return (f"postgresql+asyncpg://postgres@127.0.0.1:{self.primary_port},"
                f"127.0.0.1:{self.standby_port}/postgres?target_session_attrs=read-write")

    def single_url(self, port: int) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"

    def start(self) -> None:
        """initdb and start the primary, base-backup and start the standby streaming."""
        self._local.initdb(self.primary_data)
        with open(self.primary_data / "postgresql.conf", "a", encoding="utf-8") as conf:
            conf.write("\n# fingerplat failover test\nwal_level = replica\n"
                       "max_wal_senders = 4\nfsync = off\n")
        with open(self.primary_data / "pg_hba.conf", "a", encoding="utf-8") as hba:
            hba.write("host replication postgres 127.0.0.1/32 trust\n")
        # On the command line, not in postgresql.conf: pg_basebackup copies the file,
        # and a promoted standby that waited for a standby of its own (it has
        # none) would hold every commit until the client's command timeout.
        self._local.start(self.primary_data, self.primary_port, "primary.log",
                          "-c synchronous_standby_names='*'")
        self._local.run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port),
                        "-U", "postgres", "-D", str(self.standby_data), "-R", "-X", "stream",
                        "--no-sync")
        self._local.start(self.standby_data, self.standby_port, "standby.log")

    def stop_primary(self) -> None:
        """``pg_ctl stop -m fast``: every session of the primary is ended."""
        self._local.stop(self.primary_data, "fast")

    def promote_standby(self) -> None:
        """``pg_ctl promote``, waiting until the standby accepts writes."""
        self._local.run("pg_ctl", "-D", str(self.standby_data), "-w", "promote")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self._local.remove(self.standby_data, self.primary_data)


def wait_until(condition: object, timeout: float, interval: float = 0.05) -> bool:
    """Poll ``condition()`` until true or the deadline; the last answer."""
    deadline = time.monotonic() + timeout
    while True:
        if condition():  # type: ignore[operator]
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)
