"""The web listener's front door: kept pages answered before aiohttp's request machinery.

A user's page is kept as bytes (kept_pages.py), so answering it is a lookup
and a write. Through aiohttp it also costs a request handler and a task for
every connection and a request object, a response object and a middleware
chain for every request: most of the CPU a kept page takes, and the reason a
page with ``Connection: close`` cost more than twice a Twisted resource.

So web connections are accepted by the accept machinery the finger
listener uses too (fingerplat/adapters/net/accept.py), with the front door
as its door, and then, unless the first request was answered on the
accepted socket itself and the connection closed, go on to a plain
:class:`asyncio.Protocol`, the :class:`DoorProtocol`. For its first bytes and
each chunk after them, the front door answers by itself only when the
chunk is exactly one whole request, parsed by aiohttp's own parser (the
same llhttp parser aiohttp would use, with aiohttp's limits), that is a
``GET`` or ``HEAD`` without a body, upgrade or ``Expect``, for a Host
header and path whose page the service's kept answers hold under :func:`door_key`
(``service.kept_answers``, fingerplat/service/kept_answers.py). Those entries are
put there by the page handler itself, for pages it served, so the front
door never routes, resolves a tenant or decides who may see what: it
repeats an answer the application already gave, with the same headers, and
the change events that drop the page drop the door's entry with it.

Anything else (a cache miss, another route, a request split across
packets, pipelining, a body, a parse error) hands the connection to
aiohttp for good: its request handler takes over the transport and is fed
the bytes just received, as if it had been there from the start. Clients
that only ever ask for kept pages never meet aiohttp; all others see aiohttp
exactly as before, one parse later. Over TLS (the first bytes are a
handshake) and with ``[web] front_door = false`` nothing is read on accept:
the connection goes straight to a :class:`DoorProtocol` (after the handshake).
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import email.utils
import logging
import ssl
import time
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, cast

from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE, HttpProcessingError, HttpVersion
from aiohttp.http_parser import EMPTY_PAYLOAD, HttpRequestParser  # private: pinned, tested
from aiohttp.web_log import AccessLogger

from fingerplat.adapters.net import accept, proxy_header
from fingerplat.adapters.net.trusted_proxies import TrustedProxies
from fingerplat.adapters.web.client_address import client_address
from fingerplat.adapters.web.headers import security_header_items
from fingerplat.adapters.web.kept_pages import KeptPage, door_key
from fingerplat.adapters.web.keys import SERVICE
from fingerplat.adapters.web.templating import TEMPLATE_GENERATION
from fingerplat.config import WebConfig, per_address_share
from fingerplat.metrics import Metrics

log = logging.getLogger("fingerplat.web")

# aiohttp's own request limits (RequestHandler's defaults), so the front door
# never accepts a request that aiohttp would refuse.
MAX_LINE_SIZE = 8190
MAX_FIELD_SIZE = 8190
MAX_HEADERS = 128
READ_BUFSIZE = 2**16

_END_OF_HEAD = b"\r\n\r\n"
#: How long a refused connection is read from (its input dropped) before closing.
LINGER_SECONDS = 1.0
_ANSWERED_METHODS = frozenset({"GET", "HEAD"})


class _HttpDate:
    """The ``Date`` header value, formatted once per second."""

    __slots__ = ("_second", "_value")

    def __init__(self) -> None:
        self._second = -1
        self._value = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._value = email.utils.formatdate(second, usegmt=True)
        return self._value


class _UnreadPayload:
    """The flow control of a body the front door parses but never reads.

    aiohttp's parser gives each body a stream that pauses and resumes its
    protocol; the front door hands any request with a body to aiohttp
    (raw bytes and all) and drops the stream, so there is nothing to pause.
    """

    _reading_paused = False
    connected = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self, resume_parser: bool = True) -> None:
        pass


_UNREAD_PAYLOAD = _UnreadPayload()


class FrontDoor:
    """One web listener's front door: the accept machinery's :class:`~accept.Door`.

    Connections are accepted by the accept machinery the finger listener
    uses too (fingerplat/adapters/net/accept.py: caps, PROXY headers from
    trusted proxies, the first read, the waiting room, handover). When the
    first bytes are one whole request for a kept page, :meth:`first_bytes`
    answers it on the accepted socket itself; with ``Connection: close`` the
    connection is then gone (accept, recv, send, close), otherwise it goes
    on to a :class:`DoorProtocol` for the next request. Anything else goes
    to a :class:`DoorProtocol` too, which hands the bytes to aiohttp.
    """

    def __init__(self, app: web.Application, aiohttp_server: web.Server, *,
                 ssl_context: ssl.SSLContext | None, keepalive_timeout: float, metrics: Metrics,
                 access_log: logging.Logger, settings: WebConfig | None = None,
                 trusted: TrustedProxies | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.timeout = keepalive_timeout
        self.aiohttp_server = aiohttp_server
        self.ssl_context = ssl_context
        self.connections: set[DoorProtocol] = set()
        self.answered = 0  # requests the front door answered itself
        self.closing = False
        # Connections in a protocol: at the door, or handed over to aiohttp.
        # With the ones the acceptor holds (waiting for their first bytes,
        # being handed over) they are every open web connection (SPEC section 11).
        self.protocols = 0
        self.trusted = trusted if trusted is not None else TrustedProxies()
        settings = settings or WebConfig()
        self.proxy_protocol = settings.proxy_protocol  # a restart changes it
        self.acceptor = accept.Acceptor(
            "web", self, metrics=metrics, trusted=self.trusted,
            proxy_protocol=self.proxy_protocol, first_read=READ_BUFSIZE, idle_reason=None)
        self.reconfigure(settings, self.trusted)
        self._metrics = metrics
        self._service = app[SERVICE]
        self._generation = app[TEMPLATE_GENERATION]
        self._tally = metrics.tally("web")
        self._access = AccessLogger(access_log)
        self._date = _HttpDate()
        fixed = [("Server", SERVER_SOFTWARE),
                 *security_header_items(secure=ssl_context is not None)]
        self._fixed_headers = "".join(f"{name}: {value}\r\n" for name, value in fixed)

    def reconfigure(self, settings: WebConfig, trusted: TrustedProxies) -> None:
        """Limits (at start and on SIGHUP): they apply to the next connection."""
        self.max_connections = settings.max_connections
        # [web] front_door = false: never answer here, hand every request to aiohttp.
        self.answers_kept_pages = settings.front_door
        self._read_first()
        self.max_per_address = per_address_share(settings.max_connections,
                                                 settings.max_connections_per_address)
        self.trusted = trusted
        self.acceptor.trusted = trusted
        self.acceptor.configure(max_connections=self.max_connections,
                                max_per_address=self.max_per_address, idle_timeout=self.timeout)

    def _read_first(self) -> None:
        """Answer on accept while the front door is on, not closing, and the bytes are plain."""
        self.reads_first = (self.answers_kept_pages and self.ssl_context is None
                            and not self.closing)

    # -- counting ----------------------------------------------------------------

    @property
    def open_count(self) -> int:
        """Every open web connection (waiting, being handed over, at the door, at aiohttp)."""
        return self.acceptor.in_hand() + self.protocols

    @property
    def held(self) -> dict[str, int]:
        """Open connections per client address (the one a PROXY header named)."""
        return self.acceptor.held

    def refused(self, reason: str) -> None:
        self.acceptor.refused(reason)

    # -- the Door of the accept machinery ----------------------------------------

    def open_connections(self) -> int:
        return self.open_count

    def limit(self, peer: str) -> tuple[str, str] | None:
        return None  # the caps are all the web has

    def take(self, conn: _socket.socket, peer: str, deadline: float, proxied: bool) -> None:
        """Hand over unread: over TLS, with the front door off, or a PROXY header first."""
        self.acceptor.hand_over(conn, DoorProtocol(self, peer, deadline, proxied=proxied),
                                ssl_context=self.ssl_context)

    def first_bytes(self, conn: _socket.socket, peer: str, data: bytes,
                    deadline: float) -> None:
        """Answer a kept page on the accepted socket; anything else goes on to a protocol."""
        found = self.kept_answer(self.new_parser(), data, peer) if self.reads_first else None
        if found is None:  # aiohttp's, with what was read
            self.acceptor.hand_over(conn, DoorProtocol(self, peer, deadline, received=data))
            return
        answer, closes = found
        if closes:
            sent = accept.Acceptor.send_and_close(conn, answer)
            if 0 <= sent < len(answer):
                self.acceptor.hand_over(conn, DoorProtocol(
                    self, peer, deadline, unsent=answer[sent:], closes_after=True))
            return
        try:
            sent = conn.send(answer, accept.NO_WAIT)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:  # the client went away
            conn.close()
            return
        # Keep-alive: the door's protocol waits for the next request (the
        # keep-alive timeout starts again after an answer).
        self.acceptor.hand_over(conn, DoorProtocol(
            self, peer, self.loop.time() + self.timeout, unsent=answer[sent:]))

    def refuse(self, conn: _socket.socket, peer: str, message: str, reason: str) -> None:
        """A ``503`` at once, then read away what the client sends before closing.

        Closing with unread input makes the kernel reset the connection, and
        the client could lose the answer; so the listener half-closes and
        closes when the client does, or after LINGER_SECONDS (the accept
        machinery's ``linger``). Over TLS the refusal is the protocol's to
        write, after the handshake (and there it only waits).
        """
        if self.ssl_context is not None:
            self.acceptor.hand_over(conn, DoorProtocol(self, peer, 0.0, refusal=(message, reason)),
                                    ssl_context=self.ssl_context)
            return
        with contextlib.suppress(OSError):
            conn.recv(READ_BUFSIZE, accept.NO_WAIT)
        self.refused(reason)
        try:
            conn.send(self.refusal(message), accept.NO_WAIT)
        except OSError:
            conn.close()
            return
        self.acceptor.linger(conn, LINGER_SECONDS)

    # -- answers -----------------------------------------------------------------

    def new_parser(self) -> Any:
        """aiohttp's own request parser, with aiohttp's limits."""
        return HttpRequestParser(
            _UNREAD_PAYLOAD, self.loop, READ_BUFSIZE, max_line_size=MAX_LINE_SIZE,
            max_field_size=MAX_FIELD_SIZE, max_headers=MAX_HEADERS,
        )

    def kept_answer(self, parser: Any, data: bytes, peer: str) -> tuple[bytes, bool] | None:
        """The answer to ``data`` and whether the connection closes after it, or None.

        None (aiohttp's to answer) unless ``data`` is exactly one whole
        ``GET``/``HEAD`` without body, upgrade or ``Expect`` whose page is kept.
        """
        if not data.endswith(_END_OF_HEAD):
            return None
        started = time.perf_counter()
        try:
            messages, upgraded, _tail = parser.feed_data(data)
        except HttpProcessingError:
            return None  # aiohttp parses it again and answers 400 its own way
        except Exception as exc:  # a bug below the parser: aiohttp would fail the same way
            return self.unreadable(exc, peer), True
        if len(messages) != 1 or upgraded:
            return None
        message, payload = messages[0]
        if (payload is not EMPTY_PAYLOAD or message.method not in _ANSWERED_METHODS
                or message.upgrade or "Expect" in message.headers):
            return None  # aiohttp answers "100 Continue" and upgrades its own way
        page = self.page_for(message.headers.get("Host"), message.url.raw_path)
        if page is None:
            return None
        return self.answer(message, page, started, peer), message.should_close

    def refusal(self, message: str) -> bytes:
        """The whole ``503`` answer to a connection refused at accept."""
        body = f"503 Service Unavailable: {message}\n".encode()
        return (f"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8"
                f"\r\nContent-Length: {len(body)}\r\nRetry-After: 1\r\nDate: {self._date.now()}"
                f"\r\n{self._fixed_headers}Connection: close\r\n\r\n").encode("latin-1") + body

    def close_idle(self) -> None:
        """Shutdown: stop answering, close every connection still at the front door.

        Nothing is ever in flight here (an answer is written in the callback
        that read its request), so closing loses no answer; the write buffer
        is flushed before the socket closes. Connections waiting for their
        first bytes are closed too; those being handed over close in their
        protocol's ``connection_made`` (unless they carry a request for aiohttp).
        """
        self.closing = True
        self._read_first()
        for protocol in list(self.connections):
            protocol.close()
        self.acceptor.close_waiting_room()

    def page_for(self, host: str | None, path: str) -> KeptPage | None:
        kept = self._service.kept_answers
        if kept is None:
            return None
        page = kept.get(door_key(self._generation.value, host, path))
        return page if isinstance(page, KeptPage) else None

    def answer(self, message: Any, page: KeptPage, started: float, peer: str) -> bytes:
        """The whole HTTP answer, header for header what aiohttp writes for the page."""
        body = page.body(datetime.now(UTC))
        version: HttpVersion = message.version
        lines = [
            f"HTTP/{version.major}.{version.minor} {page.status} {HTTPStatus(page.status).phrase}"
            "\r\nContent-Type: text/html; charset=utf-8"
            f"\r\nContent-Length: {len(body)}\r\nDate: {self._date.now()}\r\n",
            self._fixed_headers,
        ]
        if message.should_close:
            if version == (1, 1):
                lines.append("Connection: close\r\n")
        elif version == (1, 0):
            lines.append("Connection: keep-alive\r\n")
        lines.append("\r\n")
        head = "".join(lines).encode("latin-1")
        answer = head if message.method == "HEAD" else head + body
        self.answered += 1
        self._tally.observe(time.perf_counter() - started)
        if self._access.enabled:
            # aiohttp's "%b" is every byte written, head included.
            self._log_access(message, page.status, len(answer), time.perf_counter() - started,
                             peer)
        return answer

    def unreadable(self, error: Exception, peer: str) -> bytes:
        """The 400 for a request that made the HTTP parsing itself fail, and a log line.

        aiohttp answers malformed requests with a 400 of its own, but a few
        request targets make the URL library under its parser raise an
        ``IndexError`` instead of a parse error (yarl issue 1822: an
        authority in brackets that ends in "@"). That escapes aiohttp's
        ``data_received``: the event loop would log a traceback and drop the
        connection without a word to the client.
        """
        log.info("web: cannot read a request from %s: %s: %s",
                 peer, type(error).__name__, error)
        body = b"400 Bad Request: the request cannot be read\n"
        return (f"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\nDate: {self._date.now()}\r\n"
                f"{self._fixed_headers}Connection: close\r\n\r\n").encode("latin-1") + body

    def _log_access(self, message: Any, status: int, body_length: int, elapsed: float,
                    peer: str | None) -> None:
        """The same access line aiohttp writes, through aiohttp's own logger class."""
        remote = client_address(peer, message.headers, self.trusted) if self.trusted else peer
        url = message.url  # aiohttp logs the request's rel_url
        path_qs = str(url.relative() if url.absolute else url)
        request = _AccessedRequest(remote, message.method, path_qs, message.version,
                                   message.headers)
        self._access.log(request, _AccessedResponse(status, body_length), elapsed)  # type: ignore[arg-type]


class _AccessedRequest:
    """The few request fields aiohttp's ``AccessLogger`` reads."""

    __slots__ = ("headers", "method", "path_qs", "remote", "version")

    def __init__(self, remote: str | None, method: str, path_qs: str, version: HttpVersion,
                 headers: Any) -> None:
        self.remote = remote
        self.method = method
        self.path_qs = path_qs
        self.version = version
        self.headers = headers


class _AccessedResponse:
    __slots__ = ("body_length", "headers", "status")

    def __init__(self, status: int, body_length: int) -> None:
        self.status = status
        self.body_length = body_length
        self.headers: dict[str, str] = {}


class _Guarded(asyncio.Protocol):
    """aiohttp's request handler for a handed-over connection, behind one guard.

    Every callback goes straight to the handler; only an exception escaping
    its ``data_received`` (never aiohttp's own parse errors, which it
    answers itself) is turned into a 400 and a closed connection: see
    :meth:`FrontDoor.unreadable`.
    """

    __slots__ = ("_door", "_handler", "_held", "_peer", "_transport")

    def __init__(self, door: FrontDoor, handler: asyncio.Protocol, peer: str,
                 held: bool) -> None:
        self._peer = peer
        self._held = held  # counted in the acceptor's held under peer until the connection is lost
        self._door = door
        self._handler = handler
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        self._handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        try:
            self._handler.data_received(data)
        except Exception as exc:  # a library bug must not reach the event loop
            transport = self._transport
            if transport is not None and not transport.is_closing():
                transport.write(self._door.unreadable(exc, self._peer))
                transport.close()

    def eof_received(self) -> bool | None:
        return self._handler.eof_received()

    def pause_writing(self) -> None:
        self._handler.pause_writing()

    def resume_writing(self) -> None:
        self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        door = self._door
        door.protocols -= 1
        if self._held:
            self._held = False
            door.acceptor.release(self._peer)
        self._handler.connection_lost(exc)


class _ClientTransport:
    """A transport that names the client from a PROXY header as its peer.

    aiohttp takes ``request.remote`` (and its access log's ``%a``) from the
    transport's ``peername``; everything else goes to the real transport.
    """

    def __init__(self, transport: asyncio.Transport, peername: tuple[str, int]) -> None:
        self._real = transport
        self._peername = peername

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._peername
        return self._real.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)


class DoorProtocol(asyncio.Protocol):
    """One web connection handed over by the accept machinery, while the front door answers it.

    ``received``: bytes the front door already looked at and did not
    answer (they go to aiohttp at once); ``unsent``: the rest of an answer
    the accepted socket could not take (then ``closes_after`` says whether
    the connection closes after it); ``proxied``: a PROXY header comes
    first; ``refusal``: (message, reason) to refuse with (over TLS, where
    the refusal could not be written on accept).
    """

    __slots__ = ("_client", "_closes_after", "_counted", "_deadline", "_door", "_header",
                 "_lingering", "_parser", "_received", "_refusal", "_timer", "_transport",
                 "_unsent", "held", "peer")

    def __init__(self, door: FrontDoor, peer: str, deadline: float, *, received: bytes = b"",
                 unsent: bytes = b"", closes_after: bool = False, proxied: bool = False,
                 refusal: tuple[str, str] | None = None) -> None:
        self._door = door
        self.peer = peer  # the client (the one a PROXY header names, once read)
        self.held = False  # counted in the acceptor's held under peer (hand_over sets it)
        self._deadline = deadline  # the keep-alive timeout's, in loop time
        self._received = received
        self._unsent = unsent
        self._closes_after = closes_after
        self._header: bytearray | None = bytearray() if proxied else None
        self._refusal = refusal
        self._transport: asyncio.Transport | None = None
        self._parser: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self._counted = False  # counted in door.protocols
        self._lingering = False  # refused: reading away the client's input
        self._client: tuple[str, int] | None = None  # the client a PROXY header named

    # -- asyncio callbacks -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        door = self._door
        door.acceptor.handing_over.discard(self)
        door.protocols += 1
        self._counted = True
        if self._refusal is not None:
            self._refuse(transport, *self._refusal)
            return
        writer = cast(asyncio.Transport, transport)
        self._transport = writer
        if self._received:
            received, self._received = self._received, b""
            self._hand_over(received, writer)
            return
        if self._unsent:
            unsent, self._unsent = self._unsent, b""
            writer.write(unsent)
            if self._closes_after:
                self.close()
                return
        if door.closing:
            self.close()
            return
        door.connections.add(self)
        # aiohttp's keep-alive timeout: a connection that never sends a whole
        # request is closed after it, like any idle one.
        self._timer = door.loop.call_at(self._deadline, self._idle)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        if self._header is not None:
            data = self._proxy_header(data, transport)
            if not data:
                return
        answer = self._answer(data)
        if answer is None:
            self._hand_over(data, transport)
            return
        transport.write(answer)
        if self._closes_after:
            self.close()
        else:
            self._deadline = self._door.loop.time() + self._door.timeout

    def eof_received(self) -> bool | None:
        return None  # the client is done: close (after what is still buffered is sent)

    def pause_writing(self) -> None:
        # A client that asks without reading its answers is not read from
        # until it has read them: the buffer holds at most one page more.
        if self._transport is not None:
            self._transport.pause_reading()

    def resume_writing(self) -> None:
        if self._transport is not None:
            self._transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._forget()
        self._uncount()
        if self._lingering:
            self._lingering = False
            self._door.acceptor.lingering -= 1

    def let_go(self) -> None:
        """No longer count this connection against its address's share (once)."""
        if self.held:
            self.held = False
            self._door.acceptor.release(self.peer)

    def _uncount(self) -> None:
        """No longer count this connection at all (once)."""
        if self._counted:
            self._counted = False
            self._door.protocols -= 1
        self.let_go()

    # -- limits and the client behind a proxy ------------------------------------

    def _refuse(self, transport: asyncio.BaseTransport, message: str, reason: str) -> None:
        """A 503 at once, then read away what the client sends before closing.

        The protocol's own refusal, for what the accept machinery could not
        refuse on the spot (over TLS; the client a PROXY header names):
        half-close (over TLS it cannot: there it only waits) and close when
        the client does, or after LINGER_SECONDS. Very many lingering
        refusals: close at once.
        """
        door = self._door
        self._uncount()
        door.refused(reason)
        writer = cast(asyncio.WriteTransport, transport)
        writer.write(door.refusal(message))
        acceptor = door.acceptor
        if acceptor.lingering >= door.max_connections:
            writer.close()
            return
        acceptor.lingering += 1
        self._lingering = True  # data_received ignores what comes (no transport kept)
        if writer.can_write_eof():
            writer.write_eof()
        self._timer = door.loop.call_later(LINGER_SECONDS, writer.close)

    def _proxy_header(self, data: bytes, transport: asyncio.Transport) -> bytes:
        """Read the PROXY header off the connection; what follows it, once it is whole."""
        header_bytes = self._header
        assert header_bytes is not None
        header_bytes += data
        door = self._door
        try:
            header = proxy_header.parse(bytes(header_bytes))
        except proxy_header.BadProxyHeader as error:
            log.info("web: no valid PROXY header from %s: %s", self.peer, error)
            door.refused("bad_proxy_header")
            self.close()
            return b""
        if header is None:
            return b""
        self._header = None
        rest = bytes(header_bytes[header.consumed:])
        if header.source is not None and header.source != self.peer:
            self._client = (header.source, header.source_port or 0)
        if not door.acceptor.proxied_client(self, header.source):
            self._forget()
            self._refuse(transport, accept.TOO_MANY_FROM_ADDRESS, "max_connections_per_address")
            return b""
        return rest

    # -- the front door's work ---------------------------------------------------------

    def _answer(self, data: bytes) -> bytes | None:
        """The answer to ``data`` when the front door can give it, else None."""
        door = self._door
        if door.closing or not door.answers_kept_pages:
            return None
        if self._parser is None:
            self._parser = door.new_parser()
        found = door.kept_answer(self._parser, data, self.peer)
        if found is None:
            return None
        answer, self._closes_after = found
        return answer

    def _hand_over(self, data: bytes, transport: asyncio.Transport) -> None:
        """From now on aiohttp serves this connection, starting with ``data``."""
        door = self._door
        handler = _Guarded(door, door.aiohttp_server(), self.peer, self.held)
        self._counted = self.held = False  # the guard counts it from now on
        client = self._client
        self._forget()
        transport.set_protocol(handler)
        handler.connection_made(transport if client is None
                                else cast(asyncio.Transport, _ClientTransport(transport, client)))
        handler.data_received(data)

    def _idle(self) -> None:
        now = self._door.loop.time()
        if now < self._deadline and not self._door.closing:
            self._timer = self._door.loop.call_at(self._deadline, self._idle)
        else:
            self.close()

    def close(self) -> None:
        transport = self._transport
        self._forget()
        if transport is not None:
            transport.close()

    def _forget(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._transport = None
        self._parser = None
        self._door.connections.discard(self)
