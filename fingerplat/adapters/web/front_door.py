"""The web listener's front door: kept pages answered before aiohttp's request machinery.

A user's page is kept as bytes (kept_pages.py), so answering it is a lookup
and a write. Through aiohttp it also costs a request handler and a task for
every connection and a request object, a response object and a middleware
chain for every request: most of the CPU a kept page takes, and the reason a
page with ``Connection: close`` cost more than twice a Twisted resource.

So every web connection starts here, on a plain :class:`asyncio.Protocol`.
For each chunk it receives, the front door answers by itself only when the
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
exactly as before, one parse later.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, cast

from aiohttp import web
from aiohttp.http import SERVER_SOFTWARE, HttpProcessingError, HttpVersion
from aiohttp.http_parser import EMPTY_PAYLOAD, HttpRequestParser  # private: pinned, tested
from aiohttp.web_log import AccessLogger

from fingerplat.adapters.net import proxy_header
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
TOO_MANY_CONNECTIONS = "too many connections, please try again later"
TOO_MANY_FROM_ADDRESS = "too many connections from your address, please try again later"
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
    """What every connection of one web listener shares: the protocol factory."""

    def __init__(self, app: web.Application, aiohttp_server: web.Server, *, secure: bool,
                 keepalive_timeout: float, metrics: Metrics, access_log: logging.Logger,
                 settings: WebConfig | None = None,
                 trusted: TrustedProxies | None = None) -> None:
        self.loop = asyncio.get_running_loop()
        self.timeout = keepalive_timeout
        self.aiohttp_server = aiohttp_server
        self.connections: set[DoorProtocol] = set()
        self.answered = 0  # requests the front door answered itself
        self.closing = False
        # Every open web connection (at the front door or handed over to
        # aiohttp) and how many each client address holds (SPEC section 11).
        # A connection is attributed to its address (a getpeername system
        # call under uvloop) only once it could matter: while fewer than
        # max_per_address connections are open no address can hold its
        # share, so connections opened then are counted but not attributed;
        # reaching max_per_address attributes every open one (each at most
        # once), and from then on every new one at accept. Kept pages
        # answered on short connections thus never pay for the lookup.
        self.open_count = 0
        self.held: dict[str | None, int] = {}
        self.lingering = 0  # refused connections being read away
        self.trusted = trusted if trusted is not None else TrustedProxies()
        settings = settings or WebConfig()
        self.proxy_protocol = settings.proxy_protocol  # a restart changes it
        self.reconfigure(settings, self.trusted)
        self._metrics = metrics
        self._service = app[SERVICE]
        self._generation = app[TEMPLATE_GENERATION]
        self._tally = metrics.tally("web")
        self._access = AccessLogger(access_log)
        self._date = _HttpDate()
        fixed = [("Server", SERVER_SOFTWARE), *security_header_items(secure=secure)]
        self._fixed_headers = "".join(f"{name}: {value}\r\n" for name, value in fixed)

    def __call__(self) -> DoorProtocol:
        return DoorProtocol(self)

    def reconfigure(self, settings: WebConfig, trusted: TrustedProxies) -> None:
        """Limits (at start and on SIGHUP): they apply to the next connection."""
        self.max_connections = settings.max_connections
        # [web] front_door = false: never answer here, hand every request to aiohttp.
        self.answers_kept_pages = settings.front_door
        self.max_per_address = per_address_share(settings.max_connections,
                                                 settings.max_connections_per_address)
        self.trusted = trusted

    def hold(self, host: str | None) -> None:
        """Count one more connection of ``host`` (open_count is counted apart)."""
        held = self.held
        held[host] = held.get(host, 0) + 1

    def release(self, host: str | None) -> None:
        held = self.held
        left = held.get(host, 1) - 1
        if left > 0:
            held[host] = left
        else:
            held.pop(host, None)

    def attribute_all(self) -> None:
        """Every connection at the front door counted under its address (see __init__).

        Handed-over connections are attributed at handover, so the front
        door's own set holds every connection that may not be yet.
        """
        for protocol in list(self.connections):
            protocol.attribute()

    def over_share(self, host: str | None) -> bool:
        """``host`` holds its share of max_connections (trusted proxies never do)."""
        return (host is not None and self.held.get(host, 0) >= self.max_per_address
                and host not in self.trusted)

    def refused(self, reason: str) -> None:
        self._metrics.refused.labels("web", reason).inc()

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
        is flushed before the socket closes.
        """
        self.closing = True
        for protocol in list(self.connections):
            protocol.close()

    def page_for(self, host: str | None, path: str) -> KeptPage | None:
        kept = self._service.kept_answers
        if kept is None:
            return None
        page = kept.get(door_key(self._generation.value, host, path))
        return page if isinstance(page, KeptPage) else None

    def answer(self, message: Any, page: KeptPage, started: float,
               protocol: DoorProtocol) -> bytes:
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
                             protocol.peer_host())
        return answer

    def unreadable(self, error: Exception, transport: asyncio.BaseTransport) -> bytes:
        """The 400 for a request that made the HTTP parsing itself fail, and a log line.

        aiohttp answers malformed requests with a 400 of its own, but a few
        request targets make the URL library under its parser raise an
        ``IndexError`` instead of a parse error (yarl issue 1822: an
        authority in brackets that ends in "@"). That escapes aiohttp's
        ``data_received``: the event loop would log a traceback and drop the
        connection without a word to the client.
        """
        log.info("web: cannot read a request from %s: %s: %s",
                 transport.get_extra_info("peername"), type(error).__name__, error)
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

    __slots__ = ("_door", "_handler", "_host", "_transport")

    def __init__(self, door: FrontDoor, handler: asyncio.Protocol, host: str | None) -> None:
        self._host = host  # counted in door.held until the connection is lost
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
                transport.write(self._door.unreadable(exc, transport))
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
        door.open_count -= 1
        door.release(self._host)
        self._handler.connection_lost(exc)


def _peer_host(transport: asyncio.BaseTransport) -> str | None:
    peer = transport.get_extra_info("peername")
    return str(peer[0]) if isinstance(peer, tuple) and peer else None


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
    """One web connection while the front door answers it."""

    __slots__ = ("_attributed", "_client", "_closes_after", "_counted", "_deadline", "_door",
                 "_header", "_host", "_lingering", "_parser", "_timer", "_transport")

    def __init__(self, door: FrontDoor) -> None:
        self._door = door
        self._transport: asyncio.Transport | None = None
        self._parser: Any = None
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0
        self._closes_after = False
        self._host: str | None = None  # the client's address, once attributed
        self._counted = False  # counted in door.open_count
        self._attributed = False  # counted in door.held under _host
        self._lingering = False  # refused: reading away the client's input
        self._header: bytearray | None = None  # a PROXY header being read
        self._client: tuple[str, int] | None = None  # the client a PROXY header named

    # -- asyncio callbacks -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        door = self._door
        if door.open_count >= door.max_connections:
            self._refuse(transport, TOO_MANY_CONNECTIONS, "max_connections")
            return
        if door.proxy_protocol:
            host = _peer_host(transport)
            if host not in door.trusted:  # only a trusted proxy may send the header
                door.refused("untrusted_proxy")
                transport.close()
                return
            self._header = bytearray()
            self._attributed = True
        elif door.open_count >= door.max_per_address:  # every open one is attributed
            host = _peer_host(transport)
            if door.over_share(host):
                self._refuse(transport, TOO_MANY_FROM_ADDRESS, "max_connections_per_address")
                return
            self._attributed = True
        if self._attributed:
            self._host = host
            door.hold(host)
        self._counted = True
        door.open_count += 1
        self._transport = transport  # type: ignore[assignment]
        door.connections.add(self)
        if door.open_count == door.max_per_address:
            door.attribute_all()
        self._parser = HttpRequestParser(
            _UNREAD_PAYLOAD, door.loop, READ_BUFSIZE, max_line_size=MAX_LINE_SIZE,
            max_field_size=MAX_FIELD_SIZE, max_headers=MAX_HEADERS,
        )
        # aiohttp's keep-alive timeout, from the start: a connection that
        # never sends a whole request is closed after it, like any idle one.
        self._deadline = door.loop.time() + door.timeout
        self._timer = door.loop.call_at(self._deadline, self._idle)

    def data_received(self, data: bytes) -> None:
        transport = self._transport
        if transport is None:
            return
        if self._header is not None:
            data = self._proxy_header(data, transport)
            if not data:
                return
        answer = self._answer(data, transport)
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
        self._let_go()
        if self._lingering:
            self._lingering = False
            self._door.lingering -= 1

    def _let_go(self) -> None:
        """No longer count this connection (once)."""
        if self._counted:
            self._counted = False
            self._door.open_count -= 1
        self._unattribute()

    def _unattribute(self) -> None:
        if self._attributed:
            self._attributed = False
            self._door.release(self._host)

    def attribute(self) -> None:
        """Count this connection under its address, if it is not yet."""
        transport = self._transport
        if not self._attributed and transport is not None:
            self._host = _peer_host(transport)
            self._attributed = True
            self._door.hold(self._host)

    def peer_host(self) -> str | None:
        """The client's address (looked up now if it was not needed before)."""
        if self._attributed or self._transport is None:
            return self._host
        return _peer_host(self._transport)

    # -- limits and the client behind a proxy ------------------------------------

    def _refuse(self, transport: asyncio.BaseTransport, message: str, reason: str) -> None:
        """A 503 at once, then read away what the client sends before closing.

        Closing with unread input makes the kernel reset the connection, and
        the client could lose the answer; so the front door half-closes
        (over TLS it cannot: there it only waits) and closes when the client
        does, or after LINGER_SECONDS. Very many lingering refusals: close
        at once.
        """
        door = self._door
        door.refused(reason)
        writer = cast(asyncio.WriteTransport, transport)
        writer.write(door.refusal(message))
        if door.lingering >= door.max_connections:
            writer.close()
            return
        door.lingering += 1
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
            log.info("web: no valid PROXY header from %s: %s", self._host, error)
            door.refused("bad_proxy_header")
            self.close()
            return b""
        if header is None:
            return b""
        self._header = None
        rest = bytes(header_bytes[header.consumed:])
        if header.source is not None and header.source != self._host:
            self._unattribute()
            if door.over_share(header.source):
                self._let_go()
                self._forget()
                self._refuse(transport, TOO_MANY_FROM_ADDRESS, "max_connections_per_address")
                return b""
            self._host = header.source
            door.hold(header.source)
            self._attributed = True
            self._client = (header.source, header.source_port or 0)
        return rest

    # -- the front door's work ---------------------------------------------------------

    def _answer(self, data: bytes, transport: asyncio.Transport) -> bytes | None:
        """The answer to ``data`` when the front door can give it, else None."""
        door = self._door
        if not data.endswith(_END_OF_HEAD) or door.closing or not door.answers_kept_pages:
            return None
        started = time.perf_counter()
        try:
            messages, upgraded, _tail = self._parser.feed_data(data)
        except HttpProcessingError:
            return None  # aiohttp parses it again and answers 400 its own way
        except Exception as exc:  # a bug below the parser: aiohttp would fail the same way
            self._closes_after = True
            return door.unreadable(exc, transport)
        if len(messages) != 1 or upgraded:
            return None
        message, payload = messages[0]
        if (payload is not EMPTY_PAYLOAD or message.method not in _ANSWERED_METHODS
                or message.upgrade or "Expect" in message.headers):
            return None  # aiohttp answers "100 Continue" and upgrades its own way
        page = door.page_for(message.headers.get("Host"), message.url.raw_path)
        if page is None:
            return None
        self._closes_after = message.should_close
        return door.answer(message, page, started, self)

    def _hand_over(self, data: bytes, transport: asyncio.Transport) -> None:
        """From now on aiohttp serves this connection, starting with ``data``."""
        self.attribute()  # the handler counts it from now on, under its address
        self._counted = self._attributed = False
        handler = _Guarded(self._door, self._door.aiohttp_server(), self._host)
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
