"""Accepted connections that have not sent their first bytes yet.

The listener answers a connection on accept when its query is already there.
When it is not (the client is a few microseconds behind), the connection
waits here for its first bytes, bounded by the idle timeout. This is the
common case under load for half the connections, so it is kept cheap:

* one ``epoll`` set of our own, itself watched by the event loop as a single
  reader: a waiting connection costs one ``epoll_ctl`` (``EPOLLONESHOT``, so
  it needs no removal, and closing it leaves the set by itself), where a loop
  reader per connection costs three system calls and a handle allocation
  (uvloop's ``add_reader``); where ``select.epoll`` does not exist, a loop
  reader per connection is used instead;
* no timer per connection: entries are kept in arrival order, which is
  deadline order, and one timer set for the oldest deadline closes whoever
  is past it (a SIGHUP that shortens ``idle_timeout`` aside: connections
  accepted after it may then wait as long as those before).
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import select
from collections.abc import Callable

#: Ready connections taken from the epoll set per wake-up.
MAX_EVENTS = 256

Entry = tuple[_socket.socket, str, float]  # (connection, peer address, deadline)
ReadyFn = Callable[[_socket.socket, str, float], None]


class WaitingRoom:
    """Holds connections until their first bytes arrive or their deadline passes."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, on_ready: ReadyFn,
                 on_idle: Callable[[str], None], use_epoll: bool = True) -> None:
        self.loop = loop
        self.on_ready = on_ready
        self.on_idle = on_idle  # told (the peer) once per connection closed for idleness
        self.entries: dict[int, Entry] = {}
        self.sweep: asyncio.TimerHandle | None = None
        self.epoll: select.epoll | None = None
        if use_epoll and hasattr(select, "epoll"):
            self.epoll = select.epoll()
            loop.add_reader(self.epoll.fileno(), self._epoll_ready)

    def __len__(self) -> int:
        return len(self.entries)

    def add(self, conn: _socket.socket, peer: str, deadline: float) -> None:
        """Wait for ``conn``'s first bytes; ``on_ready`` gets it back when they come."""
        fd = conn.fileno()
        self.entries[fd] = (conn, peer, deadline)
        if self.epoll is not None:
            try:
                self.epoll.register(fd, select.EPOLLIN | select.EPOLLONESHOT)
            except FileExistsError:  # waited here before (a wake-up with nothing to read)
                self.epoll.modify(fd, select.EPOLLIN | select.EPOLLONESHOT)
        else:
            self.loop.add_reader(fd, self._reader_ready, fd)
        if self.sweep is None:
            self.sweep = self.loop.call_at(deadline, self._sweep_idle)

    def _epoll_ready(self) -> None:
        assert self.epoll is not None
        for fd, _events in self.epoll.poll(0, MAX_EVENTS):
            entry = self.entries.pop(fd, None)
            if entry is not None:
                self.on_ready(*entry)

    def _reader_ready(self, fd: int) -> None:
        self.loop.remove_reader(fd)
        entry = self.entries.pop(fd, None)
        if entry is not None:
            self.on_ready(*entry)

    def _sweep_idle(self) -> None:
        self.sweep = None
        now = self.loop.time()
        entries = self.entries
        while entries:
            fd, (conn, peer, deadline) = next(iter(entries.items()))
            if deadline > now:
                self.sweep = self.loop.call_at(deadline, self._sweep_idle)
                return
            del entries[fd]
            self._forget(fd)
            conn.close()
            self.on_idle(peer)

    def _forget(self, fd: int) -> None:
        if self.epoll is None:
            self.loop.remove_reader(fd)
        # In the epoll set, closing the connection removes it.

    def take_all(self) -> list[Entry]:
        """Every waiting connection, no longer watched (shutdown: the caller decides)."""
        taken = list(self.entries.values())
        for fd in list(self.entries):
            self._forget(fd)
            if self.epoll is not None:
                with contextlib.suppress(OSError):
                    self.epoll.unregister(fd)
        self.entries.clear()
        return taken

    def close(self) -> None:
        """Close every waiting connection and stop watching."""
        for fd, (conn, _peer, _deadline) in list(self.entries.items()):
            self._forget(fd)
            conn.close()
        self.entries.clear()
        if self.sweep is not None:
            self.sweep.cancel()
            self.sweep = None
        if self.epoll is not None:
            self.loop.remove_reader(self.epoll.fileno())
            self.epoll.close()
            self.epoll = None
