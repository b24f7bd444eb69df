"""PostgreSQL clusters of the tests' own, from the locally installed binaries.

Three kinds of test need one: the suite when no server answers on 5432
(tests/support/databases.py), fault tests that stop and start a server
(throwaway_postgres.py: never the shared one) and failover tests with a
primary and a standby (replicated_postgres.py). They share this recipe:
``initdb``/``pg_ctl`` from ``/usr/lib/postgresql/*/bin`` into a temporary
directory, run as the ``postgres`` OS user when the tests run as root
(PostgreSQL refuses to run as root), trust authentication, loopback only.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

MISSING = "PostgreSQL binaries are missing: apt-get install postgresql"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class LocalPostgres:
    """The binaries and a base directory that clusters live in (``remove`` deletes all)."""

    def __init__(self, prefix: str, missing: str = MISSING) -> None:
        candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        initdb = candidates[-1] if candidates else shutil.which("initdb")
        if not initdb:
            raise RuntimeError(missing)
        self.bindir = Path(initdb).parent
        self.base = Path(tempfile.mkdtemp(prefix=prefix))
        self.run_as: list[str] = []
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", "postgres"],
                               check=True)
            shutil.chown(self.base, "postgres")
            self.run_as = ["runuser", "-u", "postgres", "--"]

    def run(self, program: str, *args: str, timeout: float = 60) -> None:
        """Run one of the binaries; a failure raises with what it printed."""
        result = subprocess.run([*self.run_as, str(self.bindir / program), *args],
                                capture_output=True, timeout=timeout, text=True, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args[:1])} failed: "
                               f"{(result.stderr or result.stdout).strip()}")

    def initdb(self, data: Path) -> None:
        self.run("initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync",
                 "-E", "UTF8")

    def start(self, data: Path, port: int, log: str, *options: str) -> None:
        """``pg_ctl start`` on loopback ``port``, its socket in the base directory."""
        self.run("pg_ctl", "-D", str(data), "-l", str(self.base / log), "-w", "-o",
                 " ".join((f"-p {port} -k {self.base} -c listen_addresses=127.0.0.1",
                           *options)), "start")

    def stop(self, data: Path, mode: str = "fast") -> None:
        """``fast`` ends every session (clients see their connections drop)."""
        self.run("pg_ctl", "-D", str(data), "-m", mode, "-w", "stop")

    def remove(self, *clusters: Path) -> None:
        """Stop ``clusters`` at once, whatever state they are in, and delete everything."""
        for data in clusters:
            if data.exists():
                subprocess.run([*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(data),
                                "-m", "immediate", "-w", "stop"], capture_output=True,
                               check=False, timeout=30)
        shutil.rmtree(self.base, ignore_errors=True)
