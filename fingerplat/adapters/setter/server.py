"""The TCP setter listener (SPEC section 3) and what the UNIX one shares with it.

Each connection reads lines (CRLF or LF) with a bounded buffer and an idle
timeout, hands them to a :class:`SetterSession`, and writes its one reply
line per command. Past ``max_connections``, or past its address's share of
them (``max_connections_per_address``, by default a quarter), a client gets
one ``-ERR`` line and is closed, never left hanging and never reset. A
session that has not authenticated within ``auth_timeout`` is closed;
blank lines do not keep a session open. With ``proxy_protocol = true`` a
trusted proxy's PROXY header names the client (SPEC section 12).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass
from typing import Any

from fingerplat.adapters.net import proxy_header, sockets
from fingerplat.adapters.net.connections import ConnectionTracker
from fingerplat.adapters.net.trusted_proxies import TrustedProxies
from fingerplat.adapters.setter.session import MAX_PLAN_READ_BYTES, SetterSession, err
from fingerplat.config import Config, SetterConfig, format_address, per_address_share
from fingerplat.domain.model import Role
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService

log = logging.getLogger("fingerplat.setter")

ADAPTER = "setter"
# The stream buffer holds one line: a plan line may be long, a command may not
# (the session refuses commands over 4 KiB); anything beyond this is dropped.
READ_LIMIT = MAX_PLAN_READ_BYTES + 2
#: How long a refused connection is read from (and its input dropped) before closing.
LINGER_SECONDS = 1.0
TOO_MANY_CONNECTIONS = "too many connections, please try again later"
TOO_MANY_FROM_ADDRESS = "too many connections from your address, please try again later"


class _Overlong:
    """Marker: the line was longer than READ_LIMIT and has been discarded."""


OVERLONG = _Overlong()
#: Bytes asked of the stream per read.
CHUNK = 65536


class LineReader:
    """Lines (CRLF or LF) from a stream, with what is buffered in view.

    Its own buffer, rather than ``StreamReader.readuntil``, so that the
    listener can tell a connection that has started a command (bytes of an
    unfinished line are here) from an idle one: on SIGTERM the first is
    answered, the second closed. Cancelling :meth:`next_line` (a timeout)
    loses nothing: bytes are only taken from the stream once read.
    """

    def __init__(self, reader: asyncio.StreamReader, limit: int = READ_LIMIT,
                 initial: bytes = b"") -> None:
        self.reader = reader
        self.limit = limit
        self.buffer = bytearray(initial)
        self.discarding = False  # inside an overlong line: drop up to its end

    @property
    def partial(self) -> bool:
        """Bytes of a line that has not ended yet were received."""
        return bool(self.buffer) or self.discarding or bool(getattr(self.reader, "_buffer", b""))

    async def read_some(self) -> bytes:
        """More bytes from the stream (b"" at its end)."""
        return await self.reader.read(CHUNK)

    async def next_line(self) -> bytes | _Overlong | None:
        """The next line without its line end; None at end of input; OVERLONG if too long."""
        while True:
            end = self.buffer.find(b"\n")
            if end >= 0:
                line = bytes(self.buffer[:end])
                del self.buffer[:end + 1]
                if self.discarding:
                    self.discarding = False
                    return OVERLONG
                if len(line) > self.limit:
                    return OVERLONG
                return line.removesuffix(b"\r")
            if len(self.buffer) > self.limit:
                self.discarding = True
                self.buffer.clear()
            chunk = await self.read_some()
            if not chunk:
                if self.discarding:
                    self.discarding = False
                    return None
                rest, self.buffer = bytes(self.buffer), bytearray()
                if len(rest) > self.limit:
                    return OVERLONG
                return rest.removesuffix(b"\r") or None
            self.buffer += chunk


async def read_line(reader: asyncio.StreamReader) -> bytes | _Overlong | None:
    """The next line of ``reader`` (for callers with no connection state of their own)."""
    return await LineReader(reader).next_line()


@dataclass
class _Connection:
    """One open setter connection, as drain and the per-address cap see it."""

    writer: asyncio.StreamWriter
    remote: str | None
    lines: LineReader | None = None
    session: SetterSession | None = None
    busy: bool = False  # a command is being carried out
    task: asyncio.Task[Any] | None = None  # the handler serving it

    @property
    def started(self) -> bool:
        """A command is under way: partly received, being carried out, or a PLAN's text."""
        return (self.busy or (self.lines is not None and self.lines.partial)
                or (self.session is not None and self.session.reading_plan))


class SetterListener:
    """What the TCP and UNIX setters share: limits, the connection loop, draining."""

    name = "setter"
    #: Whether the listener reads a PROXY protocol header first (TCP only).
    proxy_capable = False

    def __init__(self, service: FingerplatService, *, settings: SetterConfig,
                 metrics: Metrics, trusted: TrustedProxies | None = None) -> None:
        self.service = service
        self.metrics = metrics
        self.trusted = trusted if trusted is not None else TrustedProxies()
        # Read at start only: turning PROXY headers on or off needs a restart.
        self.proxy_protocol = self.proxy_capable and settings.proxy_protocol
        self.apply(settings)
        self.tracker = ConnectionTracker()
        self.open: dict[asyncio.StreamWriter, _Connection] = {}
        self.per_address: dict[str, int] = {}
        self.lingering = 0  # refused connections being read away before closing
        self.servers: list[asyncio.AbstractServer] = []
        self.gauge = metrics.connections.labels(ADAPTER)
        self.closing = False
        self.drain_deadline: float | None = None

    def apply(self, settings: SetterConfig) -> None:
        self.settings = settings
        self.idle_timeout = float(settings.idle_timeout)
        self.auth_timeout = float(settings.auth_timeout)
        self.max_connections = settings.max_connections
        self.max_per_address = per_address_share(settings.max_connections,
                                                 settings.max_connections_per_address)

    def reconfigure(self, config: Config) -> None:
        """SIGHUP: new limits and timeouts apply from the next line read."""
        self.apply(config.setter)

    @property
    def addresses(self) -> list[str]:
        found = []
        for server in self.servers:
            for sock in server.sockets:
                host, port = sock.getsockname()[:2]
                found.append(format_address(host, port))
        return found

    async def close(self) -> None:
        self.closing = True
        for server in self.servers:
            server.close()

    async def drain(self, timeout: float) -> None:
        """Answer commands already started (bounded by ``timeout``), close the rest.

        A session that is idle between commands is closed at once; one that
        has sent part of a command line, is inside a PLAN's text, or is
        being answered gets until the deadline to finish that command and
        read its reply (SPEC section 11), then it is closed too.
        """
        self.closing = True
        loop = asyncio.get_running_loop()
        self.drain_deadline = loop.time() + timeout
        for connection in list(self.open.values()):
            if not connection.started:
                connection.writer.close()
        started = [c.task for c in self.open.values() if c.started and c.task is not None]
        if started:  # each ends once its command is answered (or at the deadline)
            await asyncio.wait(started, timeout=timeout)
        await self.tracker.drain(max(0.0, self.drain_deadline - loop.time()))
        for writer in list(self.open):
            writer.close()
        for server in self.servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), timeout)

    # -- per connection ----------------------------------------------------------

    async def session_for(self, writer: asyncio.StreamWriter, remote: str | None) -> SetterSession:
        """A new session for this connection (the UNIX setter adds the peer's principal)."""
        return SetterSession(self.service, remote_addr=remote)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer: Any = writer.get_extra_info("peername")
        remote = str(peer[0]) if isinstance(peer, tuple) and peer else None
        if self.closing or len(self.open) >= self.max_connections:
            self.metrics.refused.labels(ADAPTER, "max_connections").inc()
            await self._refuse(reader, writer, TOO_MANY_CONNECTIONS)
            return
        initial = b""
        if self.proxy_protocol:
            found = await self._proxy_header(reader, writer, remote)
            if found is None:
                return
            remote, initial = found
        if (remote is not None and remote not in self.trusted
                and self.per_address.get(remote, 0) >= self.max_per_address):
            self.metrics.refused.labels(ADAPTER, "max_connections_per_address").inc()
            await self._refuse(reader, writer, TOO_MANY_FROM_ADDRESS)
            return
        connection = _Connection(writer, remote, LineReader(reader, initial=initial),
                                 task=asyncio.current_task())
        self._hold(connection)
        try:
            connection.session = await self.session_for(writer, remote)
            await self._converse(connection)
        except (ConnectionError, OSError, TimeoutError):
            pass  # the client went away or stopped reading; nothing to answer
        except Exception:
            log.exception("setter connection failed")
        finally:
            self._release(connection)
            await self._close(writer)

    def _hold(self, connection: _Connection) -> None:
        self.open[connection.writer] = connection
        if connection.remote is not None:
            self.per_address[connection.remote] = self.per_address.get(connection.remote, 0) + 1
        self.gauge.inc()

    def _release(self, connection: _Connection) -> None:
        if self.open.pop(connection.writer, None) is None:
            return
        remote = connection.remote
        if remote is not None:
            left = self.per_address.get(remote, 1) - 1
            if left > 0:
                self.per_address[remote] = left
            else:
                self.per_address.pop(remote, None)
        self.gauge.dec()

    async def _proxy_header(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                            remote: str | None) -> tuple[str | None, bytes] | None:
        """The client's address and the bytes after the PROXY header, or None (closed).

        Only a trusted proxy may send one; anyone else, a malformed header or
        none within the idle timeout: the connection is closed with no answer.
        """
        if remote not in self.trusted:
            self.metrics.refused.labels(ADAPTER, "untrusted_proxy").inc()
            writer.close()
            return None
        data = b""
        try:
            async with asyncio.timeout(self.idle_timeout):
                while (header := proxy_header.parse(data)) is None:
                    chunk = await reader.read(proxy_header.MAX_HEADER_BYTES)
                    if not chunk:
                        raise proxy_header.BadProxyHeader("closed before the header")
                    data += chunk
        except (proxy_header.BadProxyHeader, TimeoutError, OSError) as error:
            log.info("setter: no valid PROXY header from %s: %s", remote, error)
            self.metrics.refused.labels(ADAPTER, "bad_proxy_header").inc()
            writer.close()
            return None
        return (header.source or remote), data[header.consumed:]

    async def _converse(self, connection: _Connection) -> None:
        session, lines, writer = connection.session, connection.lines, connection.writer
        assert session is not None and lines is not None
        loop = asyncio.get_running_loop()
        opened = loop.time()
        idle_until = opened + self.idle_timeout
        while not session.closed:
            if self.closing and not connection.started:
                return  # between commands while stopping: nothing owed
            auth_until = (opened + self.auth_timeout
                          if session.principal.role is Role.ANONYMOUS else math.inf)
            try:
                async with asyncio.timeout_at(self._next_deadline(idle_until, auth_until)):
                    line = await lines.next_line()
            except TimeoutError:
                if not self.closing:
                    self._say_timed_out(writer, auth_until <= idle_until)
                return
            if line is None:
                return
            # Blank lines between commands are no activity: they cannot keep
            # a session open (plan text is, blank or not).
            if session.reading_plan or isinstance(line, _Overlong) or line.strip():
                idle_until = loop.time() + self.idle_timeout
            await self._answer_line(connection, session, line)

    def _next_deadline(self, idle_until: float, auth_until: float) -> float:
        """When the wait for the next line ends: idle, AUTH or drain deadline, the earliest."""
        until = min(idle_until, auth_until)
        if self.drain_deadline is not None:
            until = min(until, self.drain_deadline)
        return until

    def _say_timed_out(self, writer: asyncio.StreamWriter, for_auth: bool) -> None:
        """Count the timeout and, best effort, tell a human at a terminal why the line died."""
        if for_auth:
            self.metrics.refused.labels(ADAPTER, "auth_timeout").inc()
            message = f"authentication timeout: AUTH within {self.auth_timeout:g} s, closing"
        else:
            self.metrics.refused.labels(ADAPTER, "idle_timeout").inc()
            message = "idle timeout, closing"
        writer.write((err(message) + "\r\n").encode())

    async def _answer_line(self, connection: _Connection, session: SetterSession,
                           line: bytes | _Overlong) -> None:
        """Feed one line to the session and write its reply (plan lines are not timed)."""
        writer = connection.writer
        connection.busy = True
        try:
            with self.tracker.track():
                if isinstance(line, _Overlong):
                    reply = session.overlong()
                elif session.reading_plan and line != b".":
                    reply = await session.feed(line)
                else:
                    with self.metrics.observe(ADAPTER):
                        reply = await session.feed(line)
                if reply is not None:
                    writer.write(reply.encode("utf-8", "replace") + b"\r\n")
                    # A client that never reads its replies is dropped, not waited for.
                    await asyncio.wait_for(writer.drain(), self.idle_timeout)
        finally:
            connection.busy = False

    async def _refuse(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      message: str) -> None:
        """One ``-ERR`` line, then read away what the client sends before closing.

        Closing with unread input makes the kernel answer with a reset, and
        the client may lose the line; so the server half-closes and reads
        until the client closes too (at most LINGER_SECONDS). When very
        many refusals linger at once, the rest close at once.
        """
        writer.write((err(message) + "\r\n").encode())
        if self.lingering >= self.max_connections or not writer.can_write_eof():
            await self._close(writer)
            return
        self.lingering += 1
        try:
            writer.write_eof()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(LINGER_SECONDS):
                    while await reader.read(CHUNK):
                        pass
        finally:
            self.lingering -= 1
            await self._close(writer)

    @staticmethod
    async def _close(writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 5)


class SetterServer(SetterListener):
    """The TCP setter (a ``RunningListener`` named ``setter``)."""

    name = "setter"
    proxy_capable = True


async def start_setter_server(
    service: FingerplatService,
    host: str,
    port: int,
    *,
    settings: SetterConfig,
    metrics: Metrics,
    trusted: TrustedProxies | None = None,
    prebound: sockets.PreboundSockets | None = None,
) -> SetterServer:
    """Bind a TCP setter; a bind failure propagates as OSError for the runtime to word.

    ``prebound`` (``serve --workers``): a socket already made for ``host:port``.
    """
    setter = SetterServer(service, settings=settings, metrics=metrics, trusted=trusted)
    sock = sockets.take(prebound, host, port)  # serve --workers: shared, SO_REUSEPORT
    if sock is not None:
        server = await asyncio.start_server(setter.handle, sock=sock, limit=READ_LIMIT)
    else:
        server = await asyncio.start_server(setter.handle, host, port, limit=READ_LIMIT,
                                            reuse_address=True)
    setter.servers.append(server)
    return setter
