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

Two things keep a miss cheap under load (a profile of 100,000 misses showed
them as 30 % and 37 % of the server's CPU):

- the connections are never "reset" when they go back to the pool: asyncpg's
  default reset is a round trip of its own (``RESET ALL; UNLISTEN *; ...``)
  after every statement, and this pool runs nothing but one read-only
  ``SELECT`` in autocommit, which leaves no session state to reset;
- misses that arrive in the same turn of the event loop share one statement
  (``username = ANY($2)`` per tenant): a burst of new connections for names
  that are not kept costs one round trip, not one each.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from typing import Any

import asyncpg
from sqlalchemy import String, any_, bindparam, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import make_url

from fingerplat.domain.errors import FingerplatError, SchemaOutOfDate, Unavailable
from fingerplat.domain.model import User
from fingerplat.repository.engine import asyncpg_dsn, normalize_url
from fingerplat.repository.schema import users
from fingerplat.repository.sql import _USER_WITH_PLAN_BY_NAME
from fingerplat.repository.sql import _user as sql_user

log = logging.getLogger(__name__)


# The repository's statement for one name, widened to several names of the tenant.
_USERS_WITH_PLAN_BY_NAMES = (
    select(*_USER_WITH_PLAN_BY_NAME.selected_columns)
    .select_from(*_USER_WITH_PLAN_BY_NAME.get_final_froms())
    .where(users.c.tenant_id == bindparam("tenant_id"),
           users.c.username == any_(bindparam("usernames", type_=postgresql.ARRAY(String))))
)
#: At most this many names in one statement; a larger burst takes several.
BATCH_LIMIT = 256


def _compiled() -> tuple[str, tuple[str, ...]]:
    compiled = _USERS_WITH_PLAN_BY_NAMES.compile(dialect=postgresql.asyncpg.dialect())
    order = tuple(compiled.positiontup or ())
    return str(compiled), order


_SQL, _ORDER = _compiled()


async def _keep_session(connection: asyncpg.Connection) -> None:
    """The pool's reset: nothing to undo after a read-only autocommit ``SELECT``."""


# A connection the server closed under us (a restart, pg_terminate_backend)
# fails its statement in one of these ways; asyncpg reports the termination
# notice arriving mid-statement as an InternalClientError.
_RETRY_ON = (asyncpg.ConnectionDoesNotExistError, asyncpg.InterfaceError,
             asyncpg.CannotConnectNowError, asyncpg.AdminShutdownError,
             asyncpg.exceptions.InternalClientError)


Waiter = asyncio.Future  # resolved with the user (or None), or a domain error


def _fail(batch: dict[str, list[Waiter]], error: BaseException) -> None:
    for waiters in batch.values():
        for waiter in waiters:
            if not waiter.done():  # a miss whose client went away was cancelled
                waiter.set_exception(error)


class PgHotReads:
    """A small asyncpg pool for the user read of a cache miss, shared by concurrent misses."""

    def __init__(self, database_url: str, *, max_size: int, connect_timeout: float,
                 command_timeout: float) -> None:
        # Every host of a multi-host URL, in asyncpg's form (a failover must find
        # the new primary here too: see engine.asyncpg_dsn).
        self._dsn = asyncpg_dsn(make_url(normalize_url(database_url)))
        self._max_size = max_size
        self._connect_timeout = connect_timeout
        self._command_timeout = command_timeout
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()
        # tenant id -> username -> the futures of the misses waiting for it.
        self._waiting: dict[int, dict[str, list[Waiter]]] = {}
        self._reads: set[asyncio.Task[None]] = set()

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
                    reset=_keep_session,
                )
            return self._pool

    async def user(self, tenant_id: int, username: str) -> User | None:
        """The user (hidden or not) with its plan, or None."""
        loop = asyncio.get_running_loop()
        waiter: Waiter = loop.create_future()
        if not self._waiting:
            # Read after every miss already runnable in this turn has asked.
            loop.call_soon(self._read_waiting)
        self._waiting.setdefault(tenant_id, defaultdict(list))[username].append(waiter)
        # Each miss waits on a future of its own: one cancelled (its client
        # went away) leaves the others' answer alone.
        return await waiter  # type: ignore[no-any-return]

    def _read_waiting(self) -> None:
        waiting, self._waiting = self._waiting, {}
        for tenant_id, by_name in waiting.items():
            names = list(by_name)
            for start in range(0, len(names), BATCH_LIMIT):
                batch = {name: by_name[name] for name in names[start:start + BATCH_LIMIT]}
                task = asyncio.ensure_future(self._read_batch(tenant_id, batch))
                self._reads.add(task)
                task.add_done_callback(self._reads.discard)

    async def _read_batch(self, tenant_id: int, batch: dict[str, list[Waiter]]) -> None:
        try:
            found = await self._users(tenant_id, list(batch))
        except asyncio.CancelledError:
            _fail(batch, Unavailable("the server is stopping"))
            raise
        except Exception as error:
            _fail(batch, error)  # the same error for every miss that shared the read
            return
        for name, waiters in batch.items():
            user = found.get(name)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(user)

    async def _users(self, tenant_id: int, usernames: list[str]) -> dict[str, User]:
        params: dict[str, Any] = {"tenant_id": tenant_id, "usernames": usernames}
        args = [params[name] for name in _ORDER]
        for attempt in (1, 2):
            try:
                pool = await self._get_pool()
                rows = await pool.fetch(_SQL, *args)
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
        # The repository's own row -> User, so a column added there (finger_log)
        # is never missing here: this read once answered finger_log = False.
        return {row["username"]: sql_user(row, plan=row["plan"] or "")  # type: ignore[arg-type]
                for row in rows}

    async def close(self) -> None:
        for task in list(self._reads):
            task.cancel()
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
