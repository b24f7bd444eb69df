"""A PostgreSQL cluster of the test's own, which the test may stop and start.

Fault tests must never stop the shared server on 5432, so they run initdb and
pg_ctl from the local binaries (``/usr/lib/postgresql/*/bin``) into a
temporary directory, as the ``postgres`` OS user when the tests run as root
(PostgreSQL refuses to run as root). The same recipe as
``tests.support.databases._start_throwaway_cluster``, with stop and start.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ThrowawayCluster:
    def __init__(self) -> None:
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = candidates[-1] if candidates else shutil.which("initdb")
        if not initdb:
            raise RuntimeError("PostgreSQL binaries are missing: apt-get install postgresql")
        self.bindir = Path(initdb).parent
        self.base = Path(tempfile.mkdtemp(prefix="fingerplat-faults-"))
        self.data = self.base / "data"
        self.port = _free_port()
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", "postgres"],
                               check=True)
            shutil.chown(self.base, "postgres")
            self.run_as = ["runuser", "-u", "postgres", "--"]
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "--no-sync", "-E", "UTF8")

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        subprocess.run([*self.run_as, *args], check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                  str(self.base / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off",
                  "start")

    def stop(self, mode: str = "fast") -> None:
        """``fast`` ends every session (clients see their connections drop)."""
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w",
                  "stop")

    def destroy(self) -> None:
        subprocess.run([*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.data),
                        "-m", "immediate", "stop"], capture_output=True, check=False)
        shutil.rmtree(self.base, ignore_errors=True)


@pytest.fixture(name="throwaway_postgres")
def throwaway_postgres_fixture() -> Iterator[ThrowawayCluster]:
    """A started cluster; import ``throwaway_postgres_fixture`` to use ``throwaway_postgres``."""
    cluster = ThrowawayCluster()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.destroy()
