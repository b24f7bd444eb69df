"""The TCP setter listener (SPEC section 3) and what the UNIX one shares with it.

Each connection reads lines (CRLF or LF) with a bounded buffer and an idle
timeout, hands them to a :class:`SetterSession`, and writes its one reply
line per command. Past ``max_connections`` a client gets one ``-ERR`` line
and is closed, never left hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from fingerplat.adapters.setter.session import MAX_PLAN_READ_BYTES, SetterSession, err
from fingerplat.config import Config, SetterConfig, format_address
from fingerplat.metrics import Metrics
from fingerplat.server import sockets
from fingerplat.server.connections import ConnectionTracker
from fingerplat.service import FingerplatService

log = logging.getLogger("fingerplat.setter")

ADAPTER = "setter"
# The stream buffer holds one line: a plan line may be long, a command may not
# (the session refuses commands over 4 KiB); anything beyond this is dropped.
READ_LIMIT = MAX_PLAN_READ_BYTES + 2


class _Overlong:
    """Marker: the line was longer than READ_LIMIT and has been discarded."""


OVERLONG = _Overlong()


async def read_line(reader: asyncio.StreamReader) -> bytes | _Overlong | None:
    """The next line without its line end; None at end of input; OVERLONG if too long."""
    try:
        line = await reader.readuntil(b"\n")
    except asyncio.IncompleteReadError as error:
        return error.partial or None
    except asyncio.LimitOverrunError as error:
        # Throw the line away up to and including its end, keep the connection.
        consumed = error.consumed
        while True:
            try:
                await reader.readexactly(consumed)
                await reader.readuntil(b"\n")
                return OVERLONG
            except asyncio.LimitOverrunError as again:
                consumed = again.consumed
            except asyncio.IncompleteReadError:
                return None
    return line[:-1].removesuffix(b"\r")


class SetterListener:
    """What the TCP and UNIX setters share: limits, the connection loop, draining."""

    name = "setter"

    def __init__(self, service: FingerplatService, *, settings: SetterConfig,
                 metrics: Metrics) -> None:
        self.service = service
        self.metrics = metrics
        self.apply(settings)
        self.tracker = ConnectionTracker()
        self.open: set[asyncio.StreamWriter] = set()
        self.servers: list[asyncio.AbstractServer] = []
        self.gauge = metrics.connections.labels(ADAPTER)
        self.closing = False

    def apply(self, settings: SetterConfig) -> None:
        self.settings = settings
        self.idle_timeout = float(settings.idle_timeout)
        self.max_connections = settings.max_connections

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
        """Let commands in progress finish (bounded), then close every session."""
        self.closing = True
        await self.tracker.drain(timeout)
        for writer in list(self.open):
            writer.close()
        for server in self.servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), timeout)

    # -- per connection ----------------------------------------------------------

    async def session_for(self, writer: asyncio.StreamWriter) -> SetterSession:
        """A new session for this connection (the UNIX setter adds the peer's principal)."""
        peer: Any = writer.get_extra_info("peername")
        return SetterSession(self.service, remote_addr=str(peer[0]) if peer else None)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.closing or len(self.open) >= self.max_connections:
            self.metrics.refused.labels(ADAPTER, "max_connections").inc()
            writer.write(b"-ERR too many connections, please try again later\r\n")
            await self._close(writer)
            return
        self.open.add(writer)
        self.gauge.inc()
        try:
            session = await self.session_for(writer)
            await self._converse(session, reader, writer)
        except (ConnectionError, OSError, TimeoutError):
            pass  # the client went away or stopped reading; nothing to answer
        except Exception:
            log.exception("setter connection failed")
        finally:
            self.open.discard(writer)
            self.gauge.dec()
            await self._close(writer)

    async def _converse(self, session: SetterSession, reader: asyncio.StreamReader,
                        writer: asyncio.StreamWriter) -> None:
        while not session.closed and not self.closing:
            try:
                line = await asyncio.wait_for(read_line(reader), self.idle_timeout)
            except TimeoutError:
                self.metrics.refused.labels(ADAPTER, "idle_timeout").inc()
                # Best effort: tell a human at a terminal why the line went dead.
                writer.write((err("idle timeout, closing") + "\r\n").encode())
                return
            if line is None:
                return
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

    @staticmethod
    async def _close(writer: asyncio.StreamWriter) -> None:
        writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(writer.wait_closed(), 5)


class SetterServer(SetterListener):
    """The TCP setter (a ``RunningListener`` named ``setter``)."""

    name = "setter"


async def start_setter_server(
    service: FingerplatService,
    host: str,
    port: int,
    *,
    settings: SetterConfig,
    metrics: Metrics,
) -> SetterServer:
    """Bind a TCP setter; a bind failure propagates as OSError for the runtime to word."""
    setter = SetterServer(service, settings=settings, metrics=metrics)
    sock = sockets.take(host, port)  # serve --workers: a socket shared with SO_REUSEPORT
    if sock is not None:
        server = await asyncio.start_server(setter.handle, sock=sock, limit=READ_LIMIT)
    else:
        server = await asyncio.start_server(setter.handle, host, port, limit=READ_LIMIT,
                                            reuse_address=True)
    setter.servers.append(server)
    return setter
