"""Unit of work: one transaction, committed on success, rolled back on any error.

It also turns driver-level connection failures into the domain's
:class:`Unavailable`, so adapters answer "temporarily unavailable" instead of
leaking a driver traceback.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar

from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fingerplat.domain.errors import FingerplatError, SchemaOutOfDate, Unavailable
from fingerplat.repository.engine import SQLITE_BEGIN_OPTION
from fingerplat.repository.sql import Repository

log = logging.getLogger(__name__)

T = TypeVar("T")

# serialization_failure, deadlock_detected, lock_not_available
_RETRYABLE_SQLSTATES = ("40001", "40P01", "55P03")
# PostgreSQL refusing the connection itself (unknown database or role, auth).
_CONNECT_REFUSED_MARKERS = (
    "database \"", "role \"", "password authentication failed", "no pg_hba.conf entry",
)
_MISSING_TABLE_MARKERS = ("no such table", "undefinedtable", "does not exist")
# A server going away or coming up (a failover): say "unreachable", like a refused socket.
_GOING_AWAY_MARKERS = (
    "shutting down", "starting up", "not yet accepting connections", "in recovery",
    "read-only transaction", "target attribute", "terminating connection",
)
# Further texts of a driver error, checked in this order, and what they mean.
_TEXT_MEANINGS: tuple[tuple[tuple[str, ...], str], ...] = (
    (_GOING_AWAY_MARKERS, "database unreachable"),  # a failover under way
    (("unable to open database file",),
     "database unreachable: cannot open the SQLite database file"),
    (("database is locked",), "database busy: another writer holds the SQLite lock, try again"),
)


def translate_db_error(error: BaseException) -> FingerplatError | None:
    """Map a database failure to a domain error, or None when it is a real bug."""
    if isinstance(error, FingerplatError):
        return error
    if isinstance(error, OSError | TimeoutError | ConnectionError | sa_exc.TimeoutError):
        return Unavailable("database unreachable")
    if type(error).__name__ == "TargetServerAttributeNotMatched" or (
        type(error).__module__.startswith("asyncpg")
        and any(marker in str(error).lower() for marker in _GOING_AWAY_MARKERS)
    ):
        # No listed host is a primary yet, or the one tried is stopping (a failover).
        return Unavailable("database unreachable")
    if isinstance(error, sa_exc.DBAPIError):
        return _translate_dbapi_error(error)
    return None


def _translate_dbapi_error(error: sa_exc.DBAPIError) -> FingerplatError | None:
    """:func:`translate_db_error` for what the driver raised through SQLAlchemy."""
    said = str(error.orig if error.orig is not None else error)
    text = said.lower()
    if "no such table" in text or (
            "relation" in text and any(marker in text for marker in _MISSING_TABLE_MARKERS)):
        return SchemaOutOfDate("the database schema is missing: run `fingerplat db upgrade`")
    if getattr(error.orig, "sqlstate", None) in _RETRYABLE_SQLSTATES:
        # Two transactions locked each other out; PostgreSQL aborted this one.
        return Unavailable("database busy: a concurrent change got in the way, try again")
    if any(marker in text for marker in _CONNECT_REFUSED_MARKERS):
        return _connect_refused(said.strip())
    for markers, message in _TEXT_MEANINGS:
        if any(marker in text for marker in markers):
            return Unavailable(message)
    if _connection_lost(error, text):
        return Unavailable("database unreachable")
    return None


def _connect_refused(said: str) -> Unavailable:
    """The server answered and said no (a role or database that does not exist, a
    password): the reason is for the operator (log, CLI), never for whoever is
    asking through an adapter."""
    log.warning("cannot connect to the database: %s", said)
    return Unavailable("database unreachable",
                       detail=f"refused: {said.splitlines()[0] if said else 'no reason'}")


def _connection_lost(error: sa_exc.DBAPIError, text: str) -> bool:
    if error.connection_invalidated or isinstance(
            error, sa_exc.OperationalError | sa_exc.InterfaceError):
        return True
    return "connection" in text and ("closed" in text or "refused" in text or "lost" in text)


class UnitOfWork:
    """``async with UnitOfWork(engine) as repo:`` runs its body in one transaction.

    ``readonly=True`` is a promise that the body only reads: on SQLite such a
    unit starts a plain (deferred) transaction that never waits for the write
    lock; every other unit starts with ``BEGIN IMMEDIATE`` so its reads (the
    permission check) and its writes see one consistent database.
    """

    def __init__(self, engine: AsyncEngine, *, readonly: bool = False) -> None:
        self._engine = engine
        self._readonly = readonly
        self._conn: AsyncConnection | None = None

    async def __aenter__(self) -> Repository:
        try:
            self._conn = await self._engine.connect()
            if self._conn.dialect.name == "sqlite":
                await self._conn.execution_options(
                    **{SQLITE_BEGIN_OPTION: "BEGIN" if self._readonly else "BEGIN IMMEDIATE"}
                )
            await self._conn.begin()
        except Exception as error:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    await self._conn.close()
                self._conn = None
            mapped = translate_db_error(error)
            if mapped is None and isinstance(error, sa_exc.DBAPIError):
                # Refused at connect (unknown database or role, bad password): the
                # details are for the operator's log, not for whoever is asking.
                log.warning("cannot connect to the database: %s", error.orig or error)
                mapped = Unavailable("database unreachable", detail=str(error.orig or error))
            if mapped is not None:
                raise mapped from error
            raise
        return Repository(self._conn)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._conn is not None
        conn, self._conn = self._conn, None
        try:
            if exc is None:
                await conn.commit()
            else:
                await conn.rollback()
        except Exception as error:
            mapped = translate_db_error(error)
            if exc is None:
                if mapped is not None:
                    raise mapped from error
                raise
        finally:
            with contextlib.suppress(Exception):  # the connection is gone either way
                await conn.close()
        if exc is not None and not isinstance(exc, FingerplatError):
            mapped = translate_db_error(exc)
            if mapped is not None:
                raise mapped from exc


async def run_read(engine: AsyncEngine, fetch: Callable[[Repository], Awaitable[T]]) -> T:
    """``fetch`` on one connection of an autocommit read engine (engine.create_read_engine).

    No transaction: every statement sees the database as of its own start.
    Such a pool has no pre-ping, so a connection that died while the
    database was away (or was terminated by an administrator) is noticed by
    the read itself; reads have no side effects, so it is run once more on a
    fresh connection (SQLAlchemy has by then dropped the dead one). Driver
    errors become domain errors, as in :class:`UnitOfWork`.
    """
    for attempt in (1, 2):
        try:
            async with engine.connect() as conn:
                return await fetch(Repository(conn))
        except FingerplatError:
            raise
        except Exception as error:
            if (attempt == 1 and isinstance(error, sa_exc.DBAPIError)
                    and error.connection_invalidated):
                log.info("read connection lost (%s); reading again on a fresh one", error.orig)
                continue
            mapped = translate_db_error(error)
            if mapped is not None:
                raise mapped from error
            raise
    raise AssertionError("unreachable")  # pragma: no cover


class SqlStorage:
    """The service's storage on SQL (the Protocol is fingerplat/service/ports.py).

    Units of work on ``engine``; public reads on ``read_engine`` when there is
    one (``serve`` on PostgreSQL: autocommit, one round trip per statement),
    else in a read-only unit of work like every other read.
    """

    def __init__(self, engine: AsyncEngine, read_engine: AsyncEngine | None = None) -> None:
        self.engine = engine
        self.read_engine = read_engine

    def unit(self, *, readonly: bool = False) -> UnitOfWork:
        return UnitOfWork(self.engine, readonly=readonly)

    async def read(self, fetch: Callable[[Repository], Awaitable[T]]) -> T:
        if self.read_engine is None:
            async with self.unit(readonly=True) as repo:
                return await fetch(repo)
        return await run_read(self.read_engine, fetch)
