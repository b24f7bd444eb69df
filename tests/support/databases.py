"""Finding or starting a PostgreSQL for the tests, and fresh databases per test.

Order, as the README says: ``FINGERPLAT_TEST_DATABASE_URL`` when set; else the
server on 127.0.0.1:5432 when it answers; else a throwaway cluster started
from the locally installed PostgreSQL binaries. If none works the PostgreSQL
tests fail loudly; they never skip.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import shutil
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from fingerplat.repository import migrations
from fingerplat.repository.engine import create_engine
from tests.support.local_postgres import LocalPostgres, free_port


def _port_answers(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _start_throwaway_cluster() -> str:
    """A cluster of the run's own (tests/support/local_postgres.py), stopped at exit."""
    local = LocalPostgres("fingerplat-pg-", missing=(
        "no PostgreSQL for the tests: set FINGERPLAT_TEST_DATABASE_URL, run a server on "
        "127.0.0.1:5432, or install PostgreSQL binaries (apt-get install postgresql)"))
    data = local.base / "data"
    port = free_port()
    local.initdb(data)
    local.start(data, port, "log", "-c fsync=off")
    atexit.register(local.remove, data)
    return f"postgresql+asyncpg://postgres@127.0.0.1:{port}/postgres"


_server_url: str | None = None
_server_origin = ""


def postgres_server_url() -> str:
    """A URL for a database on the test server where we may create databases."""
    global _server_url, _server_origin
    if _server_url is None:
        env = os.environ.get("FINGERPLAT_TEST_DATABASE_URL")
        if env:
            _server_url, _server_origin = env, "FINGERPLAT_TEST_DATABASE_URL"
        elif _port_answers("127.0.0.1", 5432):
            _server_url = "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
            _server_origin = "the server answering on 127.0.0.1:5432"
        else:
            _server_url = _start_throwaway_cluster()
            _server_origin = "a throwaway cluster started for this run"
    return _server_url


def postgres_description() -> str:
    """Which PostgreSQL the tests use and why, for the run's header."""
    url = make_url(postgres_server_url()).render_as_string(hide_password=True)
    return f"{url} ({_server_origin})"


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url)
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin_execute(sql: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(postgres_server_url()))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


class DatabaseFactory:
    """Makes a migrated template once per backend, then cheap copies per test."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.run_id = uuid.uuid4().hex[:8]
        self._pg_template: str | None = None
        self._sqlite_template: Path | None = None
        self._pg_databases: list[str] = []

    async def _migrate(self, url: str) -> None:
        engine = create_engine(url)
        try:
            await migrations.upgrade(engine)
        finally:
            await engine.dispose()

    async def sqlite(self) -> str:
        if self._sqlite_template is None:
            template = self.workdir / "template.db"
            await self._migrate(f"sqlite+aiosqlite:///{template}")
            self._sqlite_template = template
        target = self.workdir / f"db-{uuid.uuid4().hex[:10]}.db"
        shutil.copy(self._sqlite_template, target)  # with its mode: 0600, as serve makes it
        return f"sqlite+aiosqlite:///{target}"

    async def postgresql(self, *, migrated: bool = True) -> str:
        server = postgres_server_url()
        if migrated and self._pg_template is None:
            name = f"fp_tmpl_{self.run_id}"
            await _admin_execute(f'CREATE DATABASE "{name}"')
            self._pg_databases.append(name)
            await self._migrate(str(make_url(server).set(database=name)))
            self._pg_template = name
        name = f"fp_test_{self.run_id}_{uuid.uuid4().hex[:8]}"
        template = f' TEMPLATE "{self._pg_template}"' if migrated else ""
        for attempt in range(20):
            try:
                await _admin_execute(f'CREATE DATABASE "{name}"{template}')
                break
            except asyncpg.ObjectInUseError:  # template briefly busy
                await asyncio.sleep(0.1 * (attempt + 1))
        else:
            raise RuntimeError("could not copy the PostgreSQL template database")
        self._pg_databases.append(name)
        return make_url(server).set(database=name).render_as_string(hide_password=False)

    async def empty(self, backend: str) -> str:
        """A database with no schema at all (for migration and upgrade tests)."""
        if backend == "sqlite":
            return f"sqlite+aiosqlite:///{self.workdir / f'empty-{uuid.uuid4().hex[:10]}.db'}"
        return await self.postgresql(migrated=False)

    async def make(self, backend: str) -> str:
        return await (self.sqlite() if backend == "sqlite" else self.postgresql())

    async def drop_all(self) -> None:
        """Drop this run's databases in a detached process.

        Each DROP DATABASE waits for a checkpoint (about 2 s on a busy server
        with fsync on); waiting for hundreds of them would double the suite's
        run time, so the test session ends and a background process cleans up.
        """
        if not self._pg_databases:
            return
        names = list(reversed(self._pg_databases))
        self._pg_databases.clear()
        subprocess.Popen(
            [sys.executable, "-c", _DROP_SCRIPT, _asyncpg_dsn(postgres_server_url()), *names],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )


_DROP_SCRIPT = """
import asyncio, sys, time
import asyncpg

async def main(dsn, names):
    conn = await asyncpg.connect(dsn)
    try:
        for name in names:
            for _ in range(10):
                try:
                    await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                    break
                except asyncpg.PostgresError:
                    time.sleep(0.2)
    finally:
        await conn.close()

asyncio.run(main(sys.argv[1], sys.argv[2:]))
"""
