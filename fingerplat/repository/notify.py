"""PostgreSQL LISTEN/NOTIFY: sending payloads, and a listener that survives outages.

Transport only: payloads are opaque strings here. What they mean (change
events) is the service's business (fingerplat/service/event_bridge.py).

The listener holds one dedicated asyncpg connection outside the pool (a
pooled connection cannot stay in LISTEN). When that connection is lost it
reconnects with backoff and calls ``on_subscribed(resumed=True)``: anything
sent while it was away is gone, and the caller must assume so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

import asyncpg
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from fingerplat.domain.backoff import Backoff
from fingerplat.repository.engine import asyncpg_dsn as engine_asyncpg_dsn

log = logging.getLogger(__name__)

# PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
MAX_PAYLOAD_BYTES = 7999
LISTENER_APPLICATION_NAME = "fingerplat-listener"


def asyncpg_dsn(engine: AsyncEngine) -> str:
    """The engine's URL as a plain libpq DSN that asyncpg.connect understands
    (every listed host, so a reconnection finds the new primary after a failover)."""
    return engine_asyncpg_dsn(engine.url)


async def notify(engine: AsyncEngine, channel: str, payload: str) -> None:
    """Send one notification (in its own short transaction, i.e. at once)."""
    if len(payload.encode("utf-8")) > MAX_PAYLOAD_BYTES:
        raise ValueError("NOTIFY payload too large")
    async with engine.begin() as conn:
        await conn.execute(text("SELECT pg_notify(:channel, :payload)"),
                           {"channel": channel, "payload": payload})


class Listener:
    """LISTEN on one channel for as long as it runs, re-subscribing after any loss."""

    def __init__(
        self,
        dsn: str,
        channel: str,
        on_payload: Callable[[str], Awaitable[None]],
        on_subscribed: Callable[[bool], Awaitable[None]],
        *,
        on_lost: Callable[[], Awaitable[None]] | None = None,
        connect_timeout: float = 5.0,
        keepalive: float = 5.0,
        max_backoff: float = 5.0,
    ) -> None:
        self._dsn = dsn
        self._channel = channel
        self._on_payload = on_payload
        self._on_subscribed = on_subscribed
        self._on_lost = on_lost
        self._connect_timeout = connect_timeout
        self._keepalive = keepalive
        self._max_backoff = max_backoff
        self._task: asyncio.Task[None] | None = None
        self._consumer: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        # Handled one at a time, in the order PostgreSQL delivered them.
        self._queue: asyncio.Queue[str] = asyncio.Queue()

    @property
    def subscribed(self) -> bool:
        return self._subscribed.is_set()

    async def wait_subscribed(self, timeout: float) -> None:
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"listen:{self._channel}")
            self._consumer = asyncio.create_task(self._consume(), name=f"notify:{self._channel}")

    async def stop(self) -> None:
        for task in (self._task, self._consumer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._consumer = None
        self._subscribed.clear()

    async def _run(self) -> None:
        backoff = Backoff(initial=0.1, maximum=self._max_backoff)
        resumed = False
        while True:
            try:
                conn = await asyncpg.connect(
                    self._dsn, timeout=self._connect_timeout,
                    server_settings={"application_name": LISTENER_APPLICATION_NAME},
                )
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError,
                    asyncpg.exceptions.InternalClientError) as error:
                # InternalClientError: no listed host is a primary (mid-failover).
                delay = backoff.next_delay()
                log.warning("LISTEN %s: cannot connect (%s); retrying in %.1fs",
                            self._channel, error, delay)
                await asyncio.sleep(delay)
                continue
            try:
                await self._serve(conn, resumed)
                backoff.reset()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("LISTEN %s: connection lost (%s); re-subscribing",
                            self._channel, error)
            finally:
                was_subscribed = self._subscribed.is_set()
                self._subscribed.clear()
                with contextlib.suppress(Exception):
                    conn.terminate()
            if was_subscribed and self._on_lost is not None:
                try:
                    await self._on_lost()
                except Exception:
                    log.exception("LISTEN %s: on_lost failed", self._channel)
            resumed = True

    async def _serve(self, conn: asyncpg.Connection, resumed: bool) -> None:
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(self._channel, self._deliver)
        self._subscribed.set()
        log.info("LISTEN %s: subscribed%s", self._channel, " again" if resumed else "")
        await self._on_subscribed(resumed)
        while not lost.is_set():
            try:
                await asyncio.wait_for(lost.wait(), self._keepalive)
            except TimeoutError:
                # A half-open TCP connection never reports its loss: ask.
                await asyncio.wait_for(conn.fetchval("SELECT 1"), self._connect_timeout)
        raise ConnectionError("listener connection terminated")

    def _deliver(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        self._queue.put_nowait(payload)

    async def _consume(self) -> None:
        while True:
            payload = await self._queue.get()
            try:
                await self._on_payload(payload)
            except Exception:
                log.exception("LISTEN %s: handling a notification failed", self._channel)
