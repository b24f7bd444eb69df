"""The one public read a cache miss makes, as an asyncpg prepared statement (PostgreSQL).

A miss of a user who exists (asked for the first time since start, in an
unusual spelling, or beyond the cache's budget) is one ``SELECT`` of the
user and its plan. Through SQLAlchemy, even on the autocommit read pool with
a prebuilt statement, the client side of it cost 300-450 µs of CPU: the
pool checkout, the greenlet hops, the result machinery. The same statement
on an asyncpg pool, whose connections keep it prepared, costs about 140 µs
(bench/README.md, "Issue 18"). The SQL text is compiled once from the
repository's own statement, so both paths read the same columns the same
way.

Only this read takes the short path; every other read and every write goes
through SQLAlchemy as before. Failures map to the same domain errors as
:func:`fingerplat.repository.uow.translate_db_error`; a connection that
died (database restart, ``pg_terminate_backend``) fails its read, which is
run once more on a fresh connection, as ``run_read`` does.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from fingerplat.domain.errors import FingerplatError, SchemaOutOfDate, Unavailable
from fingerplat.domain.model import User
from fingerplat.repository.sql import _USER_WITH_PLAN_BY_NAME

log = logging.getLogger(__name__)


def _compiled() -> tuple[str, tuple[str, ...]]:
    compiled = _USER_WITH_PLAN_BY_NAME.compile(dialect=postgresql.asyncpg.dialect())
    order = tuple(compiled.positiontup or ())
    return str(compiled), order


_SQL, _ORDER = _compiled()
# A connection the server closed under us (a restart, pg_terminate_backend)
# fails its statement in one of these ways; asyncpg reports the termination
# notice arriving mid-statement as an InternalClientError.
_RETRY_ON = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError,
             asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError,
             asyncpg.exceptions.InternalClientError)


class PgHotReads:
    """A small asyncpg pool for the user read of a cache miss."""

    def __init__(self, database_url: str, *, max_size: int, connect_timeout: float,
                 command_timeout: float) -> None:
        url = make_url(database_url).set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._max_size = max_size
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def _get_pool(self) -> asyncpg.Pool:
        pool = self._pool
        if pool is not None:
            return pool
        async with self._lock:
            if self._pool is None:
                # min_size 0: no connection is opened before the first miss.
                self._pool = await asyncpg.create_pool(
                    self._dsn, min_size=0, max_size=self._max_size,
                    timeout=self._connect_timeout, command_timeout=self._command_timeout,
                    server_settings={"application_name": "fingerplat-read"},
                )
            return self._pool

    async def user(self, tenant_id: int, username: str) -> User | None:
        """The user (hidden or not) with its plan, or None."""
        params: dict[str, Any] = {"tenant_id": tenant_id, "username": username}
        args = [params[name] for name in _ORDER]
        for attempt in (1, 2):
            try:
                pool = await self._get_pool()
                row = await pool.fetchrow(_SQL, *args)
                break
            except FingerplatError:
                raise
            except _RETRY_ON as error:
                if attempt == 2:
                    raise Unavailable("database unreachable") from error
                log.info("read connection lost (%s); reading again on a fresh one", error)
                if self._pool is not None:
                    await self._pool.expire_connections()  # the others died with it
            except (OSError, TimeoutError, asyncpg.PostgresConnectionError) as error:
                raise Unavailable("database unreachable") from error
            except asyncpg.UndefinedTableError as error:
                raise SchemaOutOfDate(
                    "the database schema is missing: run `fingerplat db upgrade`") from error
        if row is None:
            return None
        return User(
            id=row["id"], tenant_id=row["tenant_id"], username=row["username"],
            full_name=row["full_name"], office=row["office"], phone=row["phone"],
            project=row["project"], hidden=row["hidden"], status=row["status"],
            status_set_at=row["status_set_at"], plan=row["plan"] or "",
            created_at=row["created_at"], status_expires_at=row["status_expires_at"],
            finger_log=row["finger_log"],
        )

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
