"""The finger listener: an asyncio ``Protocol`` per connection, one query each.

The hot path is deliberately plain callbacks (no streams, no per-connection
coroutine until a full query line is in): ``connection_made`` applies the
connection and rate limits and arms the idle timer, ``data_received`` looks
for the line end; an answer the read cache holds is written and the
connection closed right there, and only otherwise one task asks
:class:`FingerAnswerer` and writes the CRLF answer through
:func:`render.encode` before closing.

Limits (SPEC section 2), each answered with one line and a close, never a
hang: ``max_connections`` open connections, ``rate_limit`` queries per second
per client address (burst twice that), 512-byte queries, ``idle_timeout``
seconds to send the line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any, cast

from fingerplat.adapters.finger import render
from fingerplat.adapters.finger.answer import FingerAnswerer, ForwardFn
from fingerplat.adapters.finger.limits import RateLimiter
from fingerplat.adapters.finger.query import MAX_QUERY_BYTES
from fingerplat.config import Config, FingerConfig, format_address
from fingerplat.domain.text import printable
from fingerplat.metrics import Metrics
from fingerplat.server import sockets
from fingerplat.server.connections import ConnectionTracker
from fingerplat.service import FingerplatService

log = logging.getLogger("fingerplat.finger")
access_log = logging.getLogger("fingerplat.finger.access")

ADAPTER = "finger"
BACKLOG = 1024
LINGER_SECONDS = 1.0

TOO_MANY_CONNECTIONS = "too many connections, please try again later"
RATE_LIMITED = "too many queries from your address, please slow down"
QUERY_TOO_LONG = f"query too long: at most {MAX_QUERY_BYTES} bytes"


class FingerServer:
    """One finger listener (a ``RunningListener`` for the composition root)."""

    name = "finger"

    def __init__(
        self,
        answerer: FingerAnswerer,
        *,
        settings: FingerConfig,
        metrics: Metrics,
        tenant: str | None,
    ) -> None:
        self.answerer = answerer
        self.metrics = metrics
        self.tenant = tenant
        self.limiter = RateLimiter(settings.rate_limit, 2 * settings.rate_limit)
        self.apply(settings)
        self.tracker = ConnectionTracker()
        self.open: set[FingerProtocol] = set()
        self.servers: list[asyncio.AbstractServer] = []
        # The label children are looked up once: per query this is the same
        # accounting as ``metrics.observe("finger")`` (the answerer never raises,
        # so there is no error to count) at a fraction of the cost on the hot path.
        self.gauge = metrics.connections.labels(ADAPTER)
        self.requests = metrics.requests.labels(ADAPTER)
        self.latency = metrics.latency.labels(ADAPTER)
        # Answers from the read cache and open connections are counted in plain
        # ints and handed to the metrics before each scrape (Metrics.add_flusher).
        self.instant_answers = 0
        self.reported_open = 0
        metrics.add_flusher(self.flush_metrics)

    def apply(self, settings: FingerConfig) -> None:
        """Take limits and timeouts from ``settings`` (at start and on SIGHUP)."""
        self.settings = settings
        self.idle_timeout = float(settings.idle_timeout)
        self.max_connections = settings.max_connections
        self.access_log = settings.access_log
        self.limiter.rate = float(settings.rate_limit)
        self.limiter.burst = 2.0 * settings.rate_limit
        self.answerer.max_listed_users = settings.max_listed_users

    def reconfigure(self, config: Config) -> None:
        """SIGHUP: new limits apply to the next connection; open ones keep theirs."""
        self.apply(config.finger)

    @property
    def addresses(self) -> list[str]:
        suffix = f" (tenant {self.tenant})" if self.tenant else ""
        found = []
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                found.append(format_address(host, port) + suffix)
        return found

    def flush_metrics(self) -> None:
        count, self.instant_answers = self.instant_answers, 0
        if count:
            self.metrics.count_instant(ADAPTER, count)
        now_open = len(self.open)
        if now_open != self.reported_open:
            self.gauge.inc(now_open - self.reported_open)
            self.reported_open = now_open

    def refused(self, reason: str) -> None:
        self.metrics.refused.labels(ADAPTER, reason).inc()

    async def close(self) -> None:
        """Stop accepting; connections already open keep going until ``drain``."""
        for server in self.servers:
            server.close()

    async def drain(self, timeout: float) -> None:
        """Let in-flight answers finish (bounded), then drop whoever is left."""
        await self.tracker.drain(timeout)
        for protocol in list(self.open):
            protocol.abort()
        for server in self.servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), timeout)


class FingerProtocol(asyncio.Protocol):
    """One finger connection: read one line, answer it, close."""

    __slots__ = ("buffer", "done", "lingering", "peer", "server", "task", "timer", "transport")

    def __init__(self, server: FingerServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.peer = "?"
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self.done = False  # a query was taken or the connection refused: ignore more input
        self.lingering = False  # refused an oversize query: reading the rest away

    # -- asyncio callbacks -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's TCPTransport is no asyncio.Transport subclass.
        self.transport = cast(asyncio.Transport, transport)
        server = self.server
        peer: Any = transport.get_extra_info("peername")
        self.peer = str(peer[0]) if peer else "?"
        if len(server.open) >= server.max_connections:
            self._refuse(TOO_MANY_CONNECTIONS, "max_connections")
            return
        if not server.limiter.allow(self.peer):
            self._refuse(RATE_LIMITED, "rate_limit")
            return
        server.open.add(self)
        self.timer = asyncio.get_running_loop().call_later(server.idle_timeout, self._idle)

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        self.buffer += data
        end = self.buffer.find(b"\n")
        if end < 0:
            if len(self.buffer) > MAX_QUERY_BYTES + 1:  # + 1: room for the CR
                self._refuse_oversize()
            return
        line = self.buffer[:end]
        if line.endswith(b"\r"):
            line = line[:-1]
        if len(line) > MAX_QUERY_BYTES:
            self._refuse_oversize()
            return
        assert self.transport is not None
        kept = self.server.answerer.cached(line)
        if kept is not None:
            self._reply_at_once(line, kept)
            return
        self.transport.pause_reading()
        self._start(line)

    def eof_received(self) -> bool:
        """A client that half-closes after its query still gets the answer.

        An unterminated last line is taken as the query (``printf alice | nc``).
        """
        if self.lingering:
            self._close()
            return False
        if self.done:
            return True
        if self.buffer:
            self._start(self.buffer.removesuffix(b"\r"))
            return True
        self._close()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        server = self.server
        server.open.discard(self)

    # -- helpers -----------------------------------------------------------------

    def _start(self, line: bytes) -> None:
        self.done = True
        self.buffer = b""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.task = asyncio.get_running_loop().create_task(self._answer(line))

    def _reply_at_once(self, line: bytes, data: bytes) -> None:
        """A cached answer: written from the callback, no task, no await."""
        self.done = True
        self.buffer = b""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        server = self.server
        server.instant_answers += 1
        if server.access_log:
            self._log_access(line, data.count(b"\r\n"))
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)
            transport.close()

    async def _answer(self, line: bytes) -> None:
        server = self.server
        with server.tracker.track():
            started = time.perf_counter()
            data, count = await server.answerer.answer_bytes(line)
            server.requests.inc()
            server.latency.observe(time.perf_counter() - started)
            if server.access_log:
                self._log_access(line, count)
            transport = self.transport
            if transport is not None and not transport.is_closing():
                transport.write(data)
                transport.close()

    def _log_access(self, line: bytes, count: int) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        query = printable(line.decode("utf-8", "replace"))[:120]
        # The extra fields become keys of a JSON log line (--log-format json).
        access_log.info("%s %s -> %d lines", self.peer, query or '""', count,
                        extra={"client": self.peer, "query": query,
                               "lines": count, "tenant": self.server.tenant})

    def _refuse(self, message: str, reason: str) -> None:
        self.done = True
        self.server.refused(reason)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(render.encode(render.refusal(message)))
        self._close()

    def _refuse_oversize(self) -> None:
        """Answer, then read and drop what the client is still sending for a moment.

        Closing with unread input makes the kernel send a reset, and the
        client could lose the error line; so the server half-closes, lets the
        client finish (bounded by LINGER_SECONDS), and only then closes.
        """
        self.done = self.lingering = True
        self.buffer = b""
        self.server.refused("query_too_long")
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(render.encode(render.refusal(QUERY_TOO_LONG)))
        if transport.can_write_eof():
            transport.write_eof()
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(LINGER_SECONDS, self._close)

    def _idle(self) -> None:
        self.timer = None
        if not self.done:
            self.done = True
            self.server.refused("idle_timeout")
            self._close()

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def start_finger_server(
    service: FingerplatService,
    host: str,
    port: int,
    *,
    tenant: str | None,
    settings: FingerConfig,
    metrics: Metrics,
    forward: ForwardFn | None = None,
) -> FingerServer:
    """Bind a finger listener (for ``tenant``, or the default tenant when None)."""
    if tenant is not None:
        tenant = (await service.resolve_tenant(tenant)).slug  # an unknown tenant fails the start
    answerer = FingerAnswerer(service, tenant=tenant, max_listed_users=settings.max_listed_users,
                              forward=forward)
    finger = FingerServer(answerer, settings=settings, metrics=metrics, tenant=tenant)
    loop = asyncio.get_running_loop()
    # A bind failure propagates as OSError; the composition root words it for the user.
    sock = sockets.take(host, port)  # serve --workers: a socket shared with SO_REUSEPORT
    if sock is not None:
        server = await loop.create_server(lambda: FingerProtocol(finger), sock=sock,
                                          backlog=BACKLOG)
    else:
        server = await loop.create_server(lambda: FingerProtocol(finger), host, port,
                                          reuse_address=True, backlog=BACKLOG)
    finger.servers.append(server)
    return finger
