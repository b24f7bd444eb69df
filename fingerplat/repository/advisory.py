"""PostgreSQL session advisory locks, each held on a connection of its own.

A session-level advisory lock belongs to the connection that took it and is
released by PostgreSQL the moment that connection ends, which is exactly the
failure detector "one IRC bot per deployment" needs: a node that dies (or
loses its database connection) lets go of its bots without any timeout of
ours. So the lock lives on a dedicated connection outside the service's pool
(a pool would recycle or share it), in autocommit mode so the session never
sits "idle in transaction" where ``idle_in_transaction_session_timeout``
could end it.

This module is SQL only; which key stands for what is the caller's business.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from fingerplat.repository.engine import normalize_url

log = logging.getLogger("fingerplat.repository.advisory")


def create_lock_engine(url: str, *, connect_timeout: float, command_timeout: float) -> AsyncEngine:
    """An engine without a pool: every lock gets (and keeps) its own connection."""
    return create_async_engine(
        normalize_url(url),  # a failover host list (h1,h2) in the form asyncpg gets
        poolclass=NullPool,
        connect_args={"timeout": connect_timeout, "command_timeout": command_timeout},
    )


class AdvisoryLock:
    """One ``pg_try_advisory_lock(key)``, held for as long as its connection lives.

    Never blocks: :meth:`try_acquire` asks once, :meth:`still_held` checks
    that the connection (and so the lock) is alive. Any database error counts
    as "not held" and drops the connection, so a caller that sees False must
    stop doing what the lock protected.
    """

    def __init__(self, engine: AsyncEngine, key: int, *, timeout: float) -> None:
        self.engine = engine
        self.key = key
        self.timeout = timeout
        self.held = False
        self._conn: AsyncConnection | None = None

    async def _connection(self) -> AsyncConnection:
        if self._conn is None:
            conn = await asyncio.wait_for(self.engine.connect(), self.timeout)
            self._conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    async def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; True when this connection holds it now."""
        if self.held:
            return await self.still_held()
        try:
            conn = await self._connection()
            result = await asyncio.wait_for(
                conn.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": self.key}),
                self.timeout,
            )
            self.held = bool(result.scalar())
        except Exception as error:
            log.debug("advisory lock %d: cannot ask: %s", self.key, error)
            await self._drop()
        return self.held

    async def still_held(self) -> bool:
        """True while the connection holding the lock answers; else drop it."""
        if not self.held or self._conn is None:
            self.held = False
            return False
        try:
            await asyncio.wait_for(self._conn.execute(text("SELECT 1")), self.timeout)
        except Exception as error:
            log.debug("advisory lock %d: connection lost: %s", self.key, error)
            await self._drop()
        return self.held

    async def release(self) -> None:
        """Unlock (best effort) and close the connection; closing alone would also unlock."""
        if self.held and self._conn is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(
                    self._conn.execute(text("SELECT pg_advisory_unlock(:key)"),
                                       {"key": self.key}),
                    self.timeout,
                )
        await self._drop()

    async def _drop(self) -> None:
        self.held = False
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # A connection that failed mid-query is invalidated (never reused) and closed.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.invalidate(), self.timeout)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(conn.close(), self.timeout)
