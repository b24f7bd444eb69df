"""The finger listener: answers from the read cache on accept, an asyncio ``Protocol`` otherwise.

The hot path is deliberately plain: connections are accepted by the accept
machinery every answering listener shares (fingerplat/adapters/net/accept.py:
a reader callback on the listening socket, the connection caps, PROXY
headers from trusted proxies, one non-blocking read right away), with this
listener's rate limit on top. A finger client sends its query as soon as it
is connected, so under load the line is usually already there; when it is
complete and the read cache holds its answer, :meth:`FingerServer.first_bytes`
sends the answer and closes the socket on the spot: no transport, no
protocol object, no timer, no event-loop registration (four system calls in
all: accept, recv, send, close).

Everything else (a partial or oversize line, a cache miss, an answer that
does not fit the socket buffer) is handed to a
:class:`FingerProtocol` on an ordinary transport with what was already read,
and follows the rules below exactly as if the protocol had read it itself:
``data_received`` looks for the line end, and one task asks
:class:`FingerAnswerer` and writes the CRLF answer through
:func:`render.encode` before closing.

Limits (SPEC sections 2 and 11), each answered with one line and a close,
never a hang: ``max_connections`` open connections, of which one client
address may hold its share (``max_connections_per_address``, by default a
quarter), ``rate_limit`` queries per second per client address (burst twice
that), 512-byte queries, ``idle_timeout`` seconds to send the line.

With ``proxy_protocol = true`` (SPEC section 12) only connections from
``[network] trusted_proxies`` are taken, each handed to a protocol that reads
the PROXY header first; the client it names is the peer for the limits and
the access log. On SIGTERM, connections whose query has started are answered
within the drain deadline; the others are closed at once.
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import logging
import socket
import time
from typing import cast

from fingerplat.adapters.finger import render
from fingerplat.adapters.finger.answer import FingerAnswerer, ForwardFn
from fingerplat.adapters.finger.limits import RateLimiter
from fingerplat.adapters.finger.query import MAX_QUERY_BYTES
from fingerplat.adapters.net import accept, proxy_header, sockets
from fingerplat.adapters.net.connections import ConnectionTracker
from fingerplat.adapters.net.trusted_proxies import TrustedProxies
from fingerplat.adapters.net.waiting import WaitingRoom
from fingerplat.config import Config, FingerConfig, format_address, per_address_share
from fingerplat.domain.text import printable
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService

log = logging.getLogger("fingerplat.finger")
access_log = logging.getLogger("fingerplat.finger.access")

ADAPTER = "finger"
BACKLOG = 1024
LINGER_SECONDS = 1.0
#: What the first read on a new connection may take: a query line at its
#: longest with its CRLF fits; anything longer goes on to the protocol.
FIRST_READ_BYTES = 4096
TOO_MANY_CONNECTIONS = accept.TOO_MANY_CONNECTIONS
TOO_MANY_FROM_ADDRESS = accept.TOO_MANY_FROM_ADDRESS
#: How often drain looks whether the queries it waits for were answered.
DRAIN_POLL_SECONDS = 0.02
RATE_LIMITED = "too many queries from your address, please slow down"
QUERY_TOO_LONG = f"query too long: at most {MAX_QUERY_BYTES} bytes"


class FingerServer:
    """One finger listener (a ``RunningListener`` for the composition root).

    Connections are accepted by the shared accept machinery
    (fingerplat/adapters/net/accept.py), for which this is the :class:`Door`:
    it refuses with a finger line, answers a whole query line on the spot
    from the read cache, and hands everything else to a :class:`FingerProtocol`.
    """

    name = "finger"

    def __init__(
        self,
        answerer: FingerAnswerer,
        *,
        settings: FingerConfig,
        metrics: Metrics,
        tenant: str | None,
        trusted: TrustedProxies | None = None,
    ) -> None:
        self.answerer = answerer
        self.metrics = metrics
        self.tenant = tenant
        self.trusted = trusted if trusted is not None else TrustedProxies()
        # Read at start only: turning PROXY headers on or off needs a restart.
        self.proxy_protocol = settings.proxy_protocol
        self.limiter = RateLimiter(settings.rate_limit, 2 * settings.rate_limit)
        self.acceptor = accept.Acceptor(
            ADAPTER, self, metrics=metrics, trusted=self.trusted,
            proxy_protocol=self.proxy_protocol, first_read=FIRST_READ_BYTES,
            idle_reason="idle_timeout")
        self.apply(settings)
        self.tracker = ConnectionTracker()
        self.open: set[FingerProtocol] = set()
        # The label children are looked up once: per query this is the same
        # accounting as ``metrics.observe("finger")`` (the answerer never raises,
        # so there is no error to count) at a fraction of the cost on the hot path.
        self.gauge = metrics.connections.labels(ADAPTER)
        self.requests = metrics.requests.labels(ADAPTER)
        self.latency = metrics.latency.labels(ADAPTER)
        # Answers from the read cache and open connections are counted in plain
        # ints and handed to the metrics before each scrape (Metrics.add_flusher).
        self.instant_answers = 0
        # Of those, the ones answered from the accepted socket itself (the
        # fast path [finger] answer_on_accept turns off), since the start.
        self.answered_on_accept = 0
        self.reported_open = 0
        metrics.add_flusher(self.flush_metrics)

    def apply(self, settings: FingerConfig) -> None:
        """Take limits and timeouts from ``settings`` (at start and on SIGHUP)."""
        self.settings = settings
        self.idle_timeout = float(settings.idle_timeout)
        self.max_connections = settings.max_connections
        self.max_per_address = per_address_share(settings.max_connections,
                                                 settings.max_connections_per_address)
        self.acceptor.configure(max_connections=self.max_connections,
                                max_per_address=self.max_per_address,
                                idle_timeout=self.idle_timeout)
        self.access_log = settings.access_log
        self.answer_on_accept = settings.answer_on_accept
        # The accept machinery reads the first bytes (and first_bytes answers
        # them) unless [finger] answer_on_accept = false: then the protocol
        # reads and answers every query.
        self.reads_first = settings.answer_on_accept
        self.limiter.rate = float(settings.rate_limit)
        self.limiter.burst = 2.0 * settings.rate_limit
        self.answerer.max_listed_users = settings.max_listed_users

    def reconfigure(self, config: Config) -> None:
        """SIGHUP: new limits apply to the next connection; open ones keep theirs."""
        self.apply(config.finger)

    # What the accept machinery owns, as the listener's own.

    @property
    def held(self) -> dict[str, int]:
        """Connections held (waiting, being handed over, open) per client address;
        answered-on-accept ones are never held."""
        return self.acceptor.held

    @property
    def waiting_room(self) -> WaitingRoom | None:
        return self.acceptor.waiting_room

    @property
    def listeners(self) -> list[socket.socket]:
        return self.acceptor.listeners

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self.acceptor.loop

    @property
    def addresses(self) -> list[str]:
        suffix = f" (tenant {self.tenant})" if self.tenant else ""
        return [format_address(host, port) + suffix for host, port in self.acceptor.addresses]

    def flush_metrics(self) -> None:
        count, self.instant_answers = self.instant_answers, 0
        if count:
            self.metrics.count_instant(ADAPTER, count)
        now_open = self.open_connections()
        if now_open != self.reported_open:
            self.gauge.inc(now_open - self.reported_open)
            self.reported_open = now_open

    def open_connections(self) -> int:
        """Connections accepted and not closed: waiting for a query, being handed over, open."""
        return self.acceptor.in_hand() + len(self.open)

    def refused(self, reason: str) -> None:
        self.acceptor.refused(reason)


    def listen(self, sock: socket.socket) -> None:
        """Accept on ``sock`` (listening) from this event loop."""
        self.acceptor.listen(sock)

    # -- the Door of the accept machinery ----------------------------------------

    def limit(self, peer: str) -> tuple[str, str] | None:
        return None if self.limiter.allow(peer) else (RATE_LIMITED, "rate_limit")

    def take(self, conn: _socket.socket, peer: str, deadline: float, proxied: bool) -> None:
        """Hand over unread (answer_on_accept off, or a PROXY header first)."""
        self.acceptor.hand_over(conn, FingerProtocol(self, peer, deadline=deadline,
                                                     proxied=proxied))

    def first_bytes(self, conn: _socket.socket, peer: str, received: bytes,
                    deadline: float) -> None:
        """A whole query line with a kept answer: answered here; anything else: a protocol."""
        line = _first_line(received)
        kept = self.answerer.cached(line, peer) if line is not None else None
        if kept is None:
            self.acceptor.hand_over(conn, FingerProtocol(self, peer, received=received,
                                                         deadline=deadline))
            return
        self.answered_on_accept += 1
        self.kept_answer(peer, cast(bytes, line), kept)
        self._send_and_close(conn, peer, kept)

    def refuse(self, conn: _socket.socket, peer: str, message: str, reason: str) -> None:
        # Read what already came first: closing with the query unread would
        # make the kernel reset the connection, and the client could lose the
        # refusal line.
        with contextlib.suppress(OSError):
            conn.recv(FIRST_READ_BYTES, accept.NO_WAIT)
        self.refused(reason)
        self._send_and_close(conn, peer, render.encode(render.refusal(message)))

    # -- answering from here, or handing over ------------------------------------

    def kept_answer(self, peer: str, line: bytes, data: bytes) -> None:
        """Account for an answer from the read cache (on accept or in a protocol)."""
        self.instant_answers += 1
        if self.access_log:
            log_access(self, peer, line, data.count(b"\r\n"))

    def _send_and_close(self, conn: _socket.socket, peer: str, data: bytes) -> None:
        """Send ``data`` and close; what the socket buffer cannot take goes to a transport."""
        sent = accept.Acceptor.send_and_close(conn, data)
        if 0 <= sent < len(data):
            self.acceptor.hand_over(conn, FingerProtocol(self, peer, unsent=data[sent:]))

    # -- stopping ----------------------------------------------------------------

    async def close(self) -> None:
        """Stop accepting; connections already open keep going until ``drain``."""
        self.acceptor.close()

    def _answering(self) -> bool:
        return bool(self.acceptor.handing_over) or any(p.started for p in self.open)

    async def drain(self, timeout: float) -> None:
        """Answer the queries that have started (bounded by ``timeout``), drop the rest.

        A connection that has sent nothing is closed at once; one whose
        query (or PROXY header) is partly received gets until the deadline to
        send the rest and read its answer (SPEC section 11), as does a
        query being answered.
        """
        acceptor = self.acceptor
        assert acceptor.loop is not None or not acceptor.listeners
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        acceptor.draining = True
        for conn, peer, entry_deadline in acceptor.take_waiting():
            # Bytes may have come since it was put there: then it has started.
            acceptor.read_first(conn, peer, min(entry_deadline, deadline))
        for protocol in list(self.open):
            if not protocol.started:
                protocol.close()
        while self._answering() and loop.time() < deadline:  # noqa: ASYNC110 (shutdown only)
            await asyncio.sleep(DRAIN_POLL_SECONDS)
        await self.tracker.drain(max(0.0, deadline - loop.time()))
        acceptor.cancel_handovers()
        acceptor.close_waiting_room()
        for protocol in list(self.open):
            protocol.abort()


class _TooLong:
    """Marker: the query line is (or is already bound to be) over MAX_QUERY_BYTES."""


TOO_LONG = _TooLong()


def query_line(buffer: bytes) -> bytes | _TooLong | None:
    """The query line at the start of ``buffer``, without its CRLF (a bare LF will do).

    None while no line end has come (and the line can still be short enough);
    :data:`TOO_LONG` once it cannot. The one place a query line is framed:
    the listener's first read and the protocol both ask here.
    """
    end = buffer.find(b"\n")
    if end < 0:
        return TOO_LONG if len(buffer) > MAX_QUERY_BYTES + 1 else None  # + 1: room for the CR
    line = buffer[:end]
    if line.endswith(b"\r"):
        line = line[:-1]
    return TOO_LONG if len(line) > MAX_QUERY_BYTES else line


def _first_line(received: bytes) -> bytes | None:
    """The query line when ``received`` holds exactly one whole one, else None.

    Anything else (no line end yet, an oversize line, more after the line)
    is left to the protocol, which has the rules for it.
    """
    if received.find(b"\n") != len(received) - 1:
        return None
    line = query_line(received)
    return line if line.__class__ is bytes else None  # type: ignore[return-value]


def log_access(server: FingerServer, peer: str, line: bytes, count: int) -> None:
    if not access_log.isEnabledFor(logging.INFO):
        return
    query = printable(line.decode("utf-8", "replace"))[:120]
    # The extra fields become keys of a JSON log line (--log-format json).
    access_log.info("%s %s -> %d %s", peer, query or '""', count,
                    "line" if count == 1 else "lines",
                    extra={"client": peer, "query": query,
                           "lines": count, "tenant": server.tenant})


class FingerProtocol(asyncio.Protocol):
    """One finger connection handed over by the listener: read one line, answer it, close.

    ``received`` is what the listener already read (fed to ``data_received``
    first); ``unsent`` is the rest of an answer the listener could not send;
    ``deadline`` is when the idle timeout that began at accept runs out.
    """

    __slots__ = ("buffer", "deadline", "done", "held", "lingering", "peer", "proxied",
                 "received", "server", "task", "timer", "transport", "unsent")

    def __init__(self, server: FingerServer, peer: str, *, received: bytes = b"",
                 unsent: bytes = b"", deadline: float | None = None,
                 proxied: bool = False) -> None:
        self.server = server
        self.held = False  # counted in server.held under ``peer``
        self.proxied = proxied  # a PROXY header comes first (then peer becomes the client)
        self.deadline = deadline  # loop time by which the query must be in
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.peer = peer
        self.received = received
        self.unsent = unsent
        self.timer: asyncio.TimerHandle | None = None
        self.task: asyncio.Task[None] | None = None
        self.done = False  # a query was taken or the connection refused: ignore more input
        self.lingering = False  # refused an oversize query: reading the rest away

    # -- asyncio callbacks -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not an isinstance check: uvloop's TCPTransport is no asyncio.Transport subclass.
        self.transport = cast(asyncio.Transport, transport)
        server = self.server
        server.acceptor.handing_over.discard(self)
        server.open.add(self)
        if self.unsent:
            self.done = True
            unsent, self.unsent = self.unsent, b""
            self._write_answer(unsent)
            return
        loop = asyncio.get_running_loop()
        deadline = self.deadline if self.deadline is not None else loop.time() + server.idle_timeout
        self.timer = loop.call_at(deadline, self._idle)
        received, self.received = self.received, b""
        if received:
            self.data_received(received)

    def data_received(self, data: bytes) -> None:
        if self.done:
            return
        self.buffer += data
        if self.proxied and not self._read_proxy_header():
            return
        line = query_line(self.buffer)
        if line is None:
            return
        if line is TOO_LONG:
            self._refuse_oversize()
            return
        assert isinstance(line, bytes) and self.transport is not None
        kept = self.server.answerer.cached(line, self.peer)
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
        self.let_go()

    # -- the client behind a proxy -----------------------------------------------

    def _read_proxy_header(self) -> bool:
        """Take the PROXY header off the buffer; False while it is incomplete or refused.

        A bad header closes the connection with no answer. Once the client
        is known, its share of connections and its rate limit apply as on
        a direct connection.
        """
        try:
            header = proxy_header.parse(self.buffer)
        except proxy_header.BadProxyHeader as error:
            log.info("finger: no valid PROXY header from %s: %s", self.peer, error)
            self.done = True
            self.server.refused("bad_proxy_header")
            self._close()
            return False
        if header is None:
            return False
        self.proxied = False
        self.buffer = self.buffer[header.consumed:]
        server = self.server
        if not server.acceptor.proxied_client(self, header.source):
            self._refuse(TOO_MANY_FROM_ADDRESS, "max_connections_per_address")
            return False
        if not server.limiter.allow(self.peer):
            self._refuse(RATE_LIMITED, "rate_limit")
            return False
        return bool(self.buffer)

    def _refuse(self, message: str, reason: str) -> None:
        """A refusal line for the client behind the proxy, then read the rest away."""
        self.server.refused(reason)
        self.done = self.lingering = True
        self.buffer = b""
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        transport.write(render.encode(render.refusal(message)))
        if transport.can_write_eof():
            transport.write_eof()
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(LINGER_SECONDS, self._close)

    def let_go(self) -> None:
        """No longer count this connection against its address's share."""
        if self.held:
            self.held = False
            self.server.acceptor.release(self.peer)

    @property
    def started(self) -> bool:
        """Part of a query (or of its PROXY header) came, or its answer is being made."""
        return not self.lingering and (bool(self.buffer) or (
            self.done and self.task is not None and not self.task.done()))

    def close(self) -> None:
        """Close now (shutdown: nothing was asked)."""
        self.done = True
        self._close()

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
        self.server.kept_answer(self.peer, line, data)
        self._write_answer(data)

    async def _answer(self, line: bytes) -> None:
        server = self.server
        with server.tracker.track():
            started = time.perf_counter()
            data, count = await server.answerer.answer_bytes(line, self.peer)
            server.requests.inc()
            server.latency.observe(time.perf_counter() - started)
            if server.access_log:
                log_access(server, self.peer, line, count)
            self._write_answer(data)

    def _write_answer(self, data: bytes) -> None:
        """The protocol's one way out for an answer: write it whole, then close.

        (The listener's own, on a bare socket, is FingerServer._send_and_close;
        what it cannot send comes here, as ``unsent``.)
        """
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)
            transport.close()

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
    trusted: TrustedProxies | None = None,
    prebound: sockets.PreboundSockets | None = None,
) -> FingerServer:
    """Bind a finger listener (for ``tenant``, or the default tenant when None).

    ``prebound`` (``serve --workers``): a socket already made for ``host:port``,
    shared with the other workers through ``SO_REUSEPORT``, is listened on as is.
    """
    if tenant is not None:
        found = await service.public.resolve_tenant(tenant)  # an unknown tenant fails the start
        tenant = found.slug
    answerer = FingerAnswerer(service, tenant=tenant, max_listed_users=settings.max_listed_users,
                              forward=forward)
    finger = FingerServer(answerer, settings=settings, metrics=metrics, tenant=tenant,
                          trusted=trusted)
    # A bind failure propagates as OSError; the composition root words it for the user.
    shared = sockets.take(prebound, host, port)
    for sock in [shared] if shared is not None else sockets.listening_sockets(
            host, port, backlog=BACKLOG):
        finger.listen(sock)
    return finger
