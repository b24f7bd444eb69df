"""The composition root's building blocks: engines, the service, a database made ready.

Every program that runs fingerplat assembles the same parts the same way:
``serve`` (:class:`fingerplat.server.runtime.Runtime`, and each of its
``--workers``), every CLI command (``fingerplat_cli.app.AppState``) and the
tests' ``service`` fixture. They used to do it each on their own (pool
settings written twice, the SQLite preparation reached for across packages);
now they all call this module, so "which pool, which service, is the schema
current" has one answer.

What is here, and what is not:

* :func:`engine_for` / :func:`read_engine_for`: an engine with the
  ``[database]`` pool and timeout settings (or the engine defaults);
* :func:`wire`: the engines and the service, no I/O yet; :meth:`Wired.prepare`
  creates/migrates SQLite exactly as ``serve`` always did (``prepare_sqlite``)
  or refuses an old PostgreSQL schema (naming ``fingerplat db upgrade``);
  :meth:`Wired.close` closes the pools;
* :func:`open_service`: the three as one ``async with``.

The listeners, signals and background tasks of ``serve`` stay in the runtime;
what a command prints stays in the CLI. This module is imported by the CLI's
start-up path, so it imports nothing heavy at module level (no SQLAlchemy, no
configuration model: the settings arrive as any object with the
:class:`DatabaseSettings` attributes, ``fingerplat.config.DatabaseConfig``
being the one in use). Adapters and the service never import it: it imports
them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from fingerplat.repository.hot_reads import PgHotReads
    from fingerplat.service import FingerplatService


class DatabaseSettings(Protocol):
    """The ``[database]`` settings an engine needs (``DatabaseConfig`` has them)."""

    pool_size: int
    max_overflow: int
    pool_timeout: float
    connect_timeout: float
    command_timeout: float


@dataclass(frozen=True)
class PoolSettings:
    """Pool size and timeouts, assembled once for every engine of a program.

    The defaults are the engine's and the ``[database]`` defaults (a unit test
    keeps the three equal), so a command without a configuration file does
    not load the configuration model just to read them.
    """

    pool_size: int = 10
    max_overflow: int = 10
    pool_timeout: float = 5.0
    connect_timeout: float = 5.0
    command_timeout: float = 10.0

    @classmethod
    def of(cls, db: DatabaseSettings | None) -> PoolSettings:
        if db is None:
            return cls()
        return cls(**{f.name: getattr(db, f.name) for f in fields(cls)})


def engine_for(database_url: str, db: DatabaseSettings | None = None) -> AsyncEngine:
    """The engine for writes and ordinary reads (no I/O until first used)."""
    from fingerplat.repository.engine import create_engine

    return create_engine(database_url, **asdict(PoolSettings.of(db)))


def read_engine_for(database_url: str, db: DatabaseSettings | None = None) -> AsyncEngine | None:
    """The public reads' pool of their own (autocommit; see ``create_read_engine``)."""
    from fingerplat.repository.engine import create_read_engine

    return create_read_engine(database_url, **asdict(PoolSettings.of(db)))


@dataclass(frozen=True)
class DatabaseReady:
    """What :meth:`Wired.prepare` found and did, for the caller to tell.

    ``state`` is ``created``, ``upgraded`` or ``using`` for SQLite (the first
    two are worth a note to whoever runs a command), ``current`` for PostgreSQL.
    """

    sqlite: bool
    state: str
    line: str


@dataclass
class Wired:
    """The engines and the service of one program (or one command), and their end."""

    database_url: str
    engine: AsyncEngine
    service: FingerplatService
    read_engine: AsyncEngine | None = None
    hot_reads: PgHotReads | None = None
    #: What :meth:`prepare` found (None until it ran).
    ready: DatabaseReady | None = None

    async def prepare(self) -> DatabaseReady:
        """SQLite: create and migrate on first use. PostgreSQL: refuse an old schema.

        PostgreSQL is never migrated implicitly (several nodes, an operator's
        decision): ``check_schema`` raises ``SchemaOutOfDate`` naming
        ``fingerplat db upgrade``.
        """
        from fingerplat.repository.engine import describe_database, is_sqlite

        if is_sqlite(self.database_url):
            from fingerplat.repository.embedded import prepare_sqlite

            prepared = await prepare_sqlite(self.engine, self.database_url)
            self.ready = DatabaseReady(True, prepared.state, prepared.line)
        else:
            await self.service.check_schema()
            self.ready = DatabaseReady(
                False, "current",
                f"database: {describe_database(self.database_url)} (schema current)")
        return self.ready

    async def close(self) -> None:
        """Close the fast-path connections, then the pools (the read pool first)."""
        if self.hot_reads is not None:
            with contextlib.suppress(Exception):
                await self.hot_reads.close()
            self.hot_reads = None
        await _let_connections_close()
        if self.read_engine is not None:
            await self.read_engine.dispose()
            self.read_engine = None
        await self.engine.dispose()


def wire(database_url: str, db: DatabaseSettings | None = None, *, read_pool: bool = False,
         hot_reads: bool = False, **service_options: Any) -> Wired:
    """Build the engines and the service (no I/O: nothing connects yet).

    ``read_pool`` gives the public reads a pool of their own, as ``serve``
    does; a one-shot command does without. ``hot_reads`` (``serve`` on
    PostgreSQL) adds the asyncpg prepared-statement read of a cache miss.
    ``service_options`` go to the service (the tests' ``clock``).
    A bad SQLite path fails here with its own ``OSError``.
    """
    from fingerplat.repository.engine import is_sqlite
    from fingerplat.service import FingerplatService

    engine = engine_for(database_url, db)
    read_engine = read_engine_for(database_url, db) if read_pool else None
    service = FingerplatService(engine, read_engine=read_engine, **service_options)
    wired = Wired(database_url, engine, service, read_engine)
    if hot_reads and not is_sqlite(database_url):
        from fingerplat.repository.hot_reads import PgHotReads

        pool = PoolSettings.of(db)
        wired.hot_reads = PgHotReads(database_url, max_size=pool.pool_size,
                                     connect_timeout=pool.connect_timeout,
                                     command_timeout=pool.command_timeout)
        service.hot_reads = wired.hot_reads
    return wired


@contextlib.asynccontextmanager
async def open_service(database_url: str, db: DatabaseSettings | None = None, *,
                       prepare: bool, read_pool: bool = False, hot_reads: bool = False,
                       **service_options: Any) -> AsyncIterator[Wired]:
    """:func:`wire`, then (``prepare``) :meth:`Wired.prepare`; the pools closed at the end.

    ``prepare=False`` is for a database known to be current (the tests make
    theirs migrated) or a caller that checks on its own.
    """
    wired = wire(database_url, db, read_pool=read_pool, hot_reads=hot_reads, **service_options)
    try:
        if prepare:
            await wired.prepare()
        yield wired
    finally:
        await wired.close()


async def _let_connections_close(timeout: float = 2.0) -> None:
    """Let the connections of cancelled background reads close before the pools go.

    A task cancelled in the middle of a SQLite read (the membership loader,
    a sweeper) leaves its connection to SQLAlchemy, which closes it from a
    task of its own (``_terminate_graceful_close``) through aiosqlite's
    thread. Disposing of the engine first stops that thread, and the close
    then waits forever: shutdown hung at the event loop's last step. So the
    loop runs until those closes are done (bounded).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    current = asyncio.current_task()
    while loop.time() < deadline:
        closing = [task for task in asyncio.all_tasks() if task is not current
                   and "_terminate_graceful_close" in getattr(task.get_coro(), "__qualname__", "")]
        if not closing:
            return
        await asyncio.wait(closing, timeout=deadline - loop.time())
