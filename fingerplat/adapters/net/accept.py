"""Accepting connections ourselves: one machinery for every listener that answers on accept.

The finger listener (answer on accept) and the web front door take their
connections off the listening socket here, not through
``loop.create_server``, so that a connection whose whole first message is
already there, and whose answer is kept, costs no transport, protocol,
timer or event-loop registration: ``accept``, ``recv``, ``send`` (with
``MSG_MORE``: answer and FIN in one segment) and ``close``.

What every such listener shares lives here, once:

* a reader callback per listening socket taking up to :data:`ACCEPT_BATCH`
  connections per wake-up, pausing (said once on the log) when the process
  is out of descriptors and resuming after :data:`ACCEPT_RETRY_SECONDS`;
* the connection caps (``max_connections``, the share per client address,
  never held against a trusted proxy) and ``proxy_protocol`` (only trusted
  proxies, whose header the protocol reads first), in that order, then the
  listener's own limit if it has one (finger's rate limit);
* the first non-blocking read, and the waiting room (waiting.py) for a
  connection whose first bytes are not there yet, bounded by the idle timeout;
* handing a connection over to an asyncio protocol on an ordinary transport
  (``loop.connect_accepted_socket``, TLS included), counted meanwhile;
* the counts: connections waiting or being handed over, and how many each
  client address holds (a connection answered on accept is never held: it
  is gone within the callback).

What differs per protocol is behind :class:`Door`: what a refusal looks
like, whether the first bytes are read here at all (``reads_first``: the
switches ``[finger] answer_on_accept`` and ``[web] front_door``, and never
over TLS), and what to do with them: answer on the spot, or hand over.

Two private CPython names are used on purpose (issue 14 asked to avoid
them where a public one exists): ``socket.socket._accept`` and
``_socket.socket``. ``socket.accept()`` builds a ``socket.socket`` in
Python and converts family and type to enums, which costs more than the
rest of a kept finger answer; tests/unit/test_socket_internals.py fails
loudly if either changes.
"""

from __future__ import annotations

import _socket
import asyncio
import errno
import logging
import socket
import ssl
from collections.abc import Iterable
from typing import Protocol

from fingerplat.adapters.net.trusted_proxies import TrustedProxies
from fingerplat.adapters.net.waiting import WaitingRoom
from fingerplat.config import format_address
from fingerplat.metrics import Metrics

log = logging.getLogger("fingerplat.net")

#: Connections taken per readiness callback of a listening socket, so one
#: listener under a flood cannot starve the others (asyncio's own choice).
ACCEPT_BATCH = 128
#: Out of file descriptors (or kernel memory): stop accepting this long.
ACCEPT_RETRY_SECONDS = 1.0
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
NO_WAIT = socket.MSG_DONTWAIT
# An answer followed by close(): with MSG_MORE the kernel holds the data
# back for that moment and sends answer and FIN in one segment, one packet
# less per connection for both ends.
LAST_WORDS = socket.MSG_DONTWAIT | getattr(socket, "MSG_MORE", 0)

TOO_MANY_CONNECTIONS = "too many connections, please try again later"
TOO_MANY_FROM_ADDRESS = "too many connections from your address, please try again later"

Conn = _socket.socket


class HandedOver(Protocol):
    """What the acceptor needs of a protocol it hands a connection to."""

    peer: str
    held: bool  # counted in Acceptor.held under ``peer``

    def let_go(self) -> None:
        """No longer count the connection against its address's share (once)."""


class Door(Protocol):
    """A listener's side of the accept machinery (the finger server, the web front door)."""

    reads_first: bool  # read the first bytes here and call first_bytes; else take

    def open_connections(self) -> int:
        """Connections accepted and not closed, waiting and handed-over ones included."""

    def limit(self, peer: str) -> tuple[str, str] | None:
        """The listener's own limit past the caps: (message, reason) to refuse, or None."""

    def refuse(self, conn: Conn, peer: str, message: str, reason: str) -> None:
        """Answer ``message`` and close (``reason`` is the metric's label)."""

    def first_bytes(self, conn: Conn, peer: str, data: bytes, deadline: float) -> None:
        """The first bytes ``conn`` sent: answer them on the spot, or hand over."""

    def take(self, conn: Conn, peer: str, deadline: float, proxied: bool) -> None:
        """Hand ``conn`` over without reading (a PROXY header first when ``proxied``)."""


class Acceptor:
    """Accepts for one listener (on any number of listening sockets) and counts for it."""

    def __init__(self, name: str, door: Door, *, metrics: Metrics, trusted: TrustedProxies,
                 proxy_protocol: bool, first_read: int, idle_reason: str | None) -> None:
        self.name = name
        self.door = door
        self.trusted = trusted
        self.proxy_protocol = proxy_protocol  # read at start only: a restart changes it
        self.first_read = first_read  # what the first read may take
        self.idle_reason = idle_reason  # the refusal counted for an idle waiting connection
        self._refused = metrics.refused
        self.max_connections = 0
        self.max_per_address = 0
        self.idle_timeout = 0.0
        # Connections held (waiting for their first bytes, being handed over,
        # open in a protocol) per client address.
        self.held: dict[str, int] = {}
        # Connections handed to a protocol whose transport is not made yet: they
        # count against max_connections like the open ones. (The tasks are kept
        # so that drain can cancel them, and so that they are not collected.)
        self.handing_over: set[HandedOver] = set()
        self.handover_tasks: set[asyncio.Task[None]] = set()
        self.lingering = 0  # refused connections being read away
        self.draining = False
        self.accept_paused = False  # out of descriptors (said once, until it passes)
        self.listeners: list[socket.socket] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.waiting_room: WaitingRoom | None = None  # made with the first listener

    def configure(self, *, max_connections: int, max_per_address: int,
                  idle_timeout: float) -> None:
        """Limits (at start and on SIGHUP): they apply to the next connection."""
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.idle_timeout = idle_timeout

    # -- counting ----------------------------------------------------------------

    @property
    def waiting(self) -> int:
        return len(self.waiting_room) if self.waiting_room is not None else 0

    def in_hand(self) -> int:
        """Connections counted here: waiting for their first bytes or being handed over."""
        room = self.waiting_room  # (inline: asked at every accept)
        return (len(room.entries) if room is not None else 0) + len(self.handing_over)

    def hold(self, peer: str) -> None:
        """Count a connection kept open for ``peer`` (against its share)."""
        held = self.held
        held[peer] = held.get(peer, 0) + 1

    def release(self, peer: str) -> None:
        held = self.held
        left = held.get(peer, 1) - 1
        if left > 0:
            held[peer] = left
        else:
            held.pop(peer, None)

    def over_share(self, peer: str) -> bool:
        """``peer`` holds its share of max_connections already (trusted proxies never do)."""
        return self.held.get(peer, 0) >= self.max_per_address and peer not in self.trusted

    def refused(self, reason: str) -> None:
        self._refused.labels(self.name, reason).inc()

    def proxied_client(self, protocol: HandedOver, source: str | None) -> bool:
        """The client a PROXY header named (``source``) takes the proxy's place in the counts.

        From now on the connection is ``source``'s (``protocol.peer``), held
        against its share; False when ``source`` already holds its share
        (the protocol refuses). None (a ``LOCAL`` header, an unknown
        family) leaves the proxy as the peer.
        """
        if source is None or source == protocol.peer:
            return True
        protocol.let_go()
        protocol.peer = source
        if self.over_share(source):
            return False
        self.hold(source)
        protocol.held = True
        return True

    # -- listening ---------------------------------------------------------------

    @property
    def addresses(self) -> Iterable[tuple[str, int]]:
        """(host, port) of every listening socket still open."""
        for sock in self.listeners:
            if sock.fileno() >= 0:  # not closed by close()
                yield sock.getsockname()[:2]

    def listen(self, sock: socket.socket) -> None:
        """Accept on ``sock`` (listening) from this event loop."""
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
            self.waiting_room = WaitingRoom(self.loop, on_ready=self._woken,
                                            on_idle=self._idle_in_waiting_room)
        sock.setblocking(False)
        self.listeners.append(sock)
        self._watch(sock)

    def _watch(self, listener: socket.socket) -> None:
        assert self.loop is not None
        # Plain ints, looked up once: the socket's properties convert to enums.
        kind = (int(listener.family), int(listener.type), listener.proto)
        self.loop.add_reader(listener.fileno(), self._accept_ready, listener, kind)

    def _accept_ready(self, listener: socket.socket, kind: tuple[int, int, int]) -> None:
        # _accept() and a bare _socket.socket, not accept(): see the module's doc.
        family, sock_type, proto = kind
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
                    log.error("%s: accept failed on %s: %s", self.name,
                              format_address(*listener.getsockname()[:2]), error)
                return
            if self.accept_paused:
                self.accept_paused = False
                log.warning("%s: accepting connections again", self.name)
            self.accepted(_socket.socket(family, sock_type, proto, fd),
                          str(address[0]) if isinstance(address, tuple) and address else "?")

    def accepted(self, conn: Conn, peer: str) -> None:
        """The caps, then the door's own limit, then read or hand over."""
        door = self.door
        if door.open_connections() >= self.max_connections:
            door.refuse(conn, peer, TOO_MANY_CONNECTIONS, "max_connections")
            return
        assert self.loop is not None
        deadline = self.loop.time() + self.idle_timeout
        if self.proxy_protocol:
            if peer not in self.trusted:  # only a trusted proxy may send the header
                self.refused("untrusted_proxy")
                conn.close()
            else:  # the protocol reads the header, then applies the limits to the client
                door.take(conn, peer, deadline, True)
            return
        if self.held.get(peer, 0) >= self.max_per_address and peer not in self.trusted:
            door.refuse(conn, peer, TOO_MANY_FROM_ADDRESS, "max_connections_per_address")
            return
        refusal = door.limit(peer)
        if refusal is not None:
            door.refuse(conn, peer, *refusal)
        elif door.reads_first:
            self.read_first(conn, peer, deadline)
        else:
            door.take(conn, peer, deadline, False)

    def _pause_accepting(self, listener: socket.socket, error: OSError) -> None:
        """Out of descriptors: stop for a moment instead of spinning on accept.

        Said once per shortage, not at every retry; the recovery is said too.
        """
        assert self.loop is not None
        if not self.accept_paused:
            self.accept_paused = True
            log.error("%s: cannot accept connections: %s; retrying every %.0f s", self.name,
                      (error.strerror or str(error)).lower(), ACCEPT_RETRY_SECONDS)
        self.loop.remove_reader(listener.fileno())
        self.loop.call_later(ACCEPT_RETRY_SECONDS, self._resume_accepting, listener)

    def _resume_accepting(self, listener: socket.socket) -> None:
        if listener in self.listeners and listener.fileno() >= 0:
            self._watch(listener)

    # -- the first bytes ---------------------------------------------------------

    def read_first(self, conn: Conn, peer: str, deadline: float) -> None:
        """Read what the client sent so far: to the door, or wait for it, or close."""
        try:
            received = conn.recv(self.first_read, NO_WAIT)
        except (BlockingIOError, InterruptedError):
            assert self.waiting_room is not None
            if self.draining:  # nothing started: nothing owed
                conn.close()
                return
            self.hold(peer)
            self.waiting_room.add(conn, peer, deadline)
            return
        except OSError:  # reset before the first byte
            conn.close()
            return
        if not received:  # closed without a word
            conn.close()
            return
        self.door.first_bytes(conn, peer, received, deadline)

    def _woken(self, conn: Conn, peer: str, deadline: float) -> None:
        """A connection from the waiting room has bytes to read."""
        self.release(peer)
        self.read_first(conn, peer, deadline)

    def _idle_in_waiting_room(self, peer: str) -> None:
        self.release(peer)
        if self.idle_reason is not None:
            self.refused(self.idle_reason)

    # -- answering here, or handing over -----------------------------------------

    @staticmethod
    def send_and_close(conn: Conn, data: bytes) -> int:
        """Send ``data`` and close; how much was sent (the rest is the caller's to hand over).

        ``-1`` when the client went away (closed; nothing to tell it).
        """
        try:
            sent = conn.send(data, LAST_WORDS)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            conn.close()
            return -1
        if sent == len(data):
            conn.close()
        return sent

    def hand_over(self, conn: Conn, protocol: HandedOver, *,
                  ssl_context: ssl.SSLContext | None = None) -> None:
        """Give the connection to ``protocol`` (an asyncio protocol) on an ordinary transport.

        The connection counts against ``protocol.peer``'s share from now on
        (``protocol.held``); the protocol takes it out of ``handing_over``
        in its ``connection_made``.
        """
        assert self.loop is not None
        # A socket.socket: the transport detaches it when it closes the descriptor.
        sock = socket.socket(conn.family, conn.type, conn.proto, conn.detach())
        self.hold(protocol.peer)
        protocol.held = True
        self.handing_over.add(protocol)
        task = self.loop.create_task(self._connect(sock, protocol, ssl_context))
        self.handover_tasks.add(task)
        task.add_done_callback(self.handover_tasks.discard)

    async def _connect(self, sock: socket.socket, protocol: HandedOver,
                       ssl_context: ssl.SSLContext | None) -> None:
        assert self.loop is not None
        try:
            await self.loop.connect_accepted_socket(
                lambda: protocol, sock,  # type: ignore[arg-type,return-value]
                ssl=ssl_context)
        except OSError:  # reset in the meantime (or a failed TLS handshake): no one to answer
            sock.close()
            protocol.let_go()
        except BaseException:  # cancelled by drain; a no-op once a transport owns it
            sock.close()
            protocol.let_go()
            raise
        finally:
            self.handing_over.discard(protocol)

    def linger(self, conn: Conn, seconds: float) -> None:
        """After a refusal: half-close, read away what the client sends, close.

        Closing with unread input makes the kernel reset the connection, and
        the client could lose the answer; so the listener closes when the
        client does, or after ``seconds``. Very many lingering at once
        (``max_connections``): close at once.
        """
        assert self.loop is not None
        if self.lingering >= self.max_connections:
            conn.close()
            return
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            conn.close()
            return
        self.lingering += 1
        fd = conn.fileno()
        loop = self.loop
        timer: list[asyncio.TimerHandle] = []

        def done() -> None:
            if conn.fileno() >= 0:
                loop.remove_reader(fd)
                conn.close()
                self.lingering -= 1
                timer[0].cancel()

        def readable() -> None:
            try:
                if conn.recv(65536, NO_WAIT):
                    return
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                pass
            done()

        timer.append(loop.call_later(seconds, done))
        loop.add_reader(fd, readable)

    # -- stopping ----------------------------------------------------------------

    def close(self) -> None:
        """Stop accepting (connections already taken carry on)."""
        for sock in self.listeners:
            if self.loop is not None and sock.fileno() >= 0:
                self.loop.remove_reader(sock.fileno())
            sock.close()

    def take_waiting(self) -> list[tuple[Conn, str, float]]:
        """Every connection in the waiting room, released and no longer watched."""
        if self.waiting_room is None:
            return []
        taken = self.waiting_room.take_all()
        for _conn, peer, _deadline in taken:
            self.release(peer)
        return taken

    def cancel_handovers(self) -> None:
        for task in list(self.handover_tasks):
            task.cancel()

    def close_waiting_room(self) -> None:
        if self.waiting_room is not None:
            for conn, _peer, _deadline in self.take_waiting():
                conn.close()
            self.waiting_room.close()
