"""The finger listener: answers from the read cache on accept, an asyncio ``Protocol`` otherwise.

The hot path is deliberately plain: the listener accepts connections itself
(a reader callback on the listening socket), and for each one applies the
connection and rate limits and tries one non-blocking read right away. A
finger client sends its query as soon as it is connected, so under load the
line is usually already there; when it is complete and the read cache holds
its answer, the answer is sent and the socket closed on the spot: no
transport, no protocol object, no timer, no event-loop registration (four
system calls in all: accept, recv, send, close).

Everything else (no data yet, a partial or oversize line, a cache miss, an
answer that does not fit the socket buffer) is handed to a
:class:`FingerProtocol` on an ordinary transport with what was already read,
and follows the rules below exactly as if the protocol had read it itself:
``data_received`` looks for the line end, and one task asks
:class:`FingerAnswerer` and writes the CRLF answer through
:func:`render.encode` before closing.

Limits (SPEC section 2), each answered with one line and a close, never a
hang: ``max_connections`` open connections, ``rate_limit`` queries per second
per client address (burst twice that), 512-byte queries, ``idle_timeout``
seconds to send the line.
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import errno
import logging
import socket
import time
from typing import cast

from fingerplat.adapters.finger import render
from fingerplat.adapters.finger.answer import FingerAnswerer, ForwardFn
from fingerplat.adapters.finger.limits import RateLimiter
from fingerplat.adapters.finger.query import MAX_QUERY_BYTES
from fingerplat.adapters.finger.waiting import WaitingRoom
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
#: Connections taken per readiness callback of a listening socket, so one
#: listener under a flood cannot starve the others (asyncio's own choice).
ACCEPT_BATCH = 128
#: What the first read on a new connection may take: a query line at its
#: longest with its CRLF fits; anything longer goes on to the protocol.
FIRST_READ_BYTES = 4096
#: Out of file descriptors (or kernel memory): stop accepting this long.
ACCEPT_RETRY_SECONDS = 1.0
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
_NO_WAIT = socket.MSG_DONTWAIT
# The answer is followed by close(): with MSG_MORE the kernel holds the data
# back for that moment and sends answer and FIN in one segment, one packet
# less per query for both ends.
_LAST_WORDS = socket.MSG_DONTWAIT | getattr(socket, "MSG_MORE", 0)

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
        # Connections handed to a protocol whose transport is not made yet: they
        # count against max_connections like the open ones. (The tasks are kept
        # so that drain can cancel them, and so that they are not collected.)
        self.handing_over: set[FingerProtocol] = set()
        self.handover_tasks: set[asyncio.Task[None]] = set()
        self.waiting_room: WaitingRoom | None = None  # made with the first listener
        self.accept_paused = False  # out of descriptors (said once, until it passes)
        self.listeners: list[socket.socket] = []
        self.loop: asyncio.AbstractEventLoop | None = None
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
        for sock in self.listeners:
            if sock.fileno() < 0:  # closed by close()
                continue
            host, port = sock.getsockname()[:2]
            found.append(format_address(host, port) + suffix)
        return found

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
        waiting = len(self.waiting_room) if self.waiting_room is not None else 0
        return waiting + len(self.handing_over) + len(self.open)

    def refused(self, reason: str) -> None:
        self.metrics.refused.labels(ADAPTER, reason).inc()

    # -- accepting ---------------------------------------------------------------

    def listen(self, sock: socket.socket) -> None:
        """Accept on ``sock`` (listening, non-blocking) from this event loop."""
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
            self.waiting_room = WaitingRoom(self.loop, on_ready=self._read_query,
                                            on_idle=lambda: self.refused("idle_timeout"))
        sock.setblocking(False)
        self.listeners.append(sock)
        self._watch(sock)

    def _watch(self, listener: socket.socket) -> None:
        assert self.loop is not None
        # Plain ints, looked up once: the socket's properties convert to enums.
        kind = (int(listener.family), int(listener.type), listener.proto)
        self.loop.add_reader(listener.fileno(), self._accept_ready, listener, kind)

    def _accept_ready(self, listener: socket.socket, kind: tuple[int, int, int]) -> None:
        # _accept() and a bare _socket.socket, not accept(): socket.accept()
        # builds a socket.socket in Python, converting family and type to
        # enums, which costs more than the rest of a cached answer.
        family, sock_type, proto = kind
        loop = self.loop
        assert loop is not None
        for _ in range(ACCEPT_BATCH):
            try:
                fd, address = listener._accept()
            except (BlockingIOError, InterruptedError):
                return  # taken by another worker, or none left
            except ConnectionAbortedError:
                continue  # the client gave up while queued
            except OSError as error:
                if error.errno in _RESOURCE_ERRORS:
                    self._pause_accepting(listener, error)
                else:
                    log.error("finger: accept failed on %s: %s",
                              format_address(*listener.getsockname()[:2]), error)
                return
            conn = _socket.socket(family, sock_type, proto, fd)
            if self.accept_paused:
                self.accept_paused = False
                log.warning("finger: accepting connections again")
            peer = str(address[0]) if isinstance(address, tuple) and address else "?"
            if self.open_connections() >= self.max_connections:
                self._refuse_at_once(conn, peer, TOO_MANY_CONNECTIONS, "max_connections")
            elif not self.limiter.allow(peer):
                self._refuse_at_once(conn, peer, RATE_LIMITED, "rate_limit")
            else:
                self._read_query(conn, peer, loop.time() + self.idle_timeout)

    def _pause_accepting(self, listener: socket.socket, error: OSError) -> None:
        """Out of descriptors: stop for a moment instead of spinning on accept.

        Said once per shortage, not at every retry; the recovery is said too.
        """
        assert self.loop is not None
        if not self.accept_paused:
            self.accept_paused = True
            log.error("finger: cannot accept connections: %s; retrying every %.0f s",
                      (error.strerror or str(error)).lower(), ACCEPT_RETRY_SECONDS)
        self.loop.remove_reader(listener.fileno())
        self.loop.call_later(ACCEPT_RETRY_SECONDS, self._resume_accepting, listener)

    def _resume_accepting(self, listener: socket.socket) -> None:
        if listener in self.listeners and listener.fileno() >= 0:
            self._watch(listener)

    def _read_query(self, conn: _socket.socket, peer: str, deadline: float) -> None:
        """Read what the client sent so far: answer at once, wait for more, or hand over."""
        try:
            received = conn.recv(FIRST_READ_BYTES, _NO_WAIT)
        except (BlockingIOError, InterruptedError):
            assert self.waiting_room is not None
            self.waiting_room.add(conn, peer, deadline)
            return
        except OSError:  # reset before the first byte
            conn.close()
            return
        if not received:  # closed without a query
            conn.close()
            return
        line = _first_line(received)
        kept = self.answerer.cached(line) if line is not None else None
        if kept is None:
            self._hand_over(conn, FingerProtocol(self, peer, received=received,
                                                 deadline=deadline))
            return
        self.instant_answers += 1
        if self.access_log:
            log_access(self, peer, cast(bytes, line), kept.count(b"\r\n"))
        self._send_and_close(conn, peer, kept)

    # -- answering from here, or handing over ------------------------------------

    def _send_and_close(self, conn: _socket.socket, peer: str, data: bytes) -> None:
        """Send ``data`` and close; what the socket buffer cannot take goes to a transport."""
        try:
            sent = conn.send(data, _LAST_WORDS)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the client went away: nothing to tell it
            conn.close()
            return
        if sent == len(data):
            conn.close()
        else:
            self._hand_over(conn, FingerProtocol(self, peer, unsent=data[sent:]))

    def _refuse_at_once(self, conn: _socket.socket, peer: str, message: str, reason: str) -> None:
        # Read what already came first: closing with the query unread would
        # make the kernel reset the connection, and the client could lose the
        # refusal line.
        with contextlib.suppress(OSError):
            conn.recv(FIRST_READ_BYTES, _NO_WAIT)
        self.refused(reason)
        self._send_and_close(conn, peer, render.encode(render.refusal(message)))

    def _hand_over(self, conn: _socket.socket, protocol: FingerProtocol) -> None:
        """Give the connection to a :class:`FingerProtocol` on an ordinary transport."""
        assert self.loop is not None
        # A socket.socket: the transport detaches it when it closes the descriptor.
        sock = socket.socket(conn.family, conn.type, conn.proto, conn.detach())
        self.handing_over.add(protocol)
        task = self.loop.create_task(self._connect(sock, protocol))
        self.handover_tasks.add(task)
        task.add_done_callback(self.handover_tasks.discard)

    async def _connect(self, sock: socket.socket, protocol: FingerProtocol) -> None:
        assert self.loop is not None
        try:
            await self.loop.connect_accepted_socket(lambda: protocol, sock)
        except OSError:
            sock.close()  # reset in the meantime: there is no one to answer
        except BaseException:  # cancelled by drain; a no-op once a transport owns it
            sock.close()
            raise
        finally:
            self.handing_over.discard(protocol)

    # -- stopping ----------------------------------------------------------------

    async def close(self) -> None:
        """Stop accepting; connections already open keep going until ``drain``."""
        for sock in self.listeners:
            if self.loop is not None and sock.fileno() >= 0:
                self.loop.remove_reader(sock.fileno())
            sock.close()

    async def drain(self, timeout: float) -> None:
        """Let in-flight answers finish (bounded), then drop whoever is left."""
        await self.tracker.drain(timeout)
        for task in list(self.handover_tasks):
            task.cancel()
        if self.waiting_room is not None:
            self.waiting_room.close()
        for protocol in list(self.open):
            protocol.abort()


def _first_line(received: bytes) -> bytes | None:
    """The query line when ``received`` holds exactly one whole one, else None.

    Anything else (no line end yet, an oversize line, more after the line)
    is left to the protocol, which has the rules for it.
    """
    end = received.find(b"\n")
    if end < 0 or end != len(received) - 1:
        return None
    line = received[:end]
    if line.endswith(b"\r"):
        line = line[:-1]
    return line if len(line) <= MAX_QUERY_BYTES else None


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

    __slots__ = ("buffer", "deadline", "done", "lingering", "peer", "received", "server",
                 "task", "timer", "transport", "unsent")

    def __init__(self, server: FingerServer, peer: str, *, received: bytes = b"",
                 unsent: bytes = b"", deadline: float | None = None) -> None:
        self.server = server
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
        server.handing_over.discard(self)
        server.open.add(self)
        if self.unsent:
            self.done = True
            self.transport.write(self.unsent)
            self.transport.close()
            self.unsent = b""
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
            log_access(server, self.peer, line, data.count(b"\r\n"))
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
                log_access(server, self.peer, line, count)
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
) -> FingerServer:
    """Bind a finger listener (for ``tenant``, or the default tenant when None)."""
    if tenant is not None:
        tenant = (await service.resolve_tenant(tenant)).slug  # an unknown tenant fails the start
    answerer = FingerAnswerer(service, tenant=tenant, max_listed_users=settings.max_listed_users,
                              forward=forward)
    finger = FingerServer(answerer, settings=settings, metrics=metrics, tenant=tenant)
    # A bind failure propagates as OSError; the composition root words it for the user.
    shared = sockets.take(host, port)  # serve --workers: a socket shared with SO_REUSEPORT
    for sock in [shared] if shared is not None else sockets.listening_sockets(
            host, port, backlog=BACKLOG):
        finger.listen(sock)
    return finger
