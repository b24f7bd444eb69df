"""Listening sockets made before an adapter starts (``serve --workers N``).

With several worker processes every worker listens on the same addresses
with ``SO_REUSEPORT``, and the kernel spreads new connections over them. The
worker makes those sockets itself (fingerplat/server/workers.py) and hands
them, as a :class:`PreboundSockets`, to the runtime it starts, which hands
them to each listening adapter (the ``prebound`` argument of ``start_*``).
An adapter asks it for its ``(host, port)`` (exactly as the configuration
names it, port 0 included) and listens on what it gets, or binds as usual
when nothing was made for it (one process, the default: no ``prebound``).
"""

from __future__ import annotations

import socket


class PreboundSockets:
    """Listening sockets by configured ``(host, port)``, each taken once.

    An object handed from the worker to the runtime to the adapters, not a
    module global: what a process listens on is visible in its calls, and a
    test can give an adapter a socket without touching shared state.
    """

    def __init__(self) -> None:
        self._socks: dict[tuple[str, int], list[socket.socket]] = {}

    def put(self, host: str, port: int, sock: socket.socket) -> None:
        """Leave a listening socket for the adapter configured with ``host:port``."""
        self._socks.setdefault((host, port), []).append(sock)

    def take(self, host: str, port: int) -> socket.socket | None:
        """The socket made for ``host:port`` (each once, in order), or None."""
        socks = self._socks.get((host, port))
        if not socks:
            return None
        sock = socks.pop(0)
        if not socks:
            del self._socks[(host, port)]
        return sock


def take(prebound: PreboundSockets | None, host: str, port: int) -> socket.socket | None:
    """``prebound.take(host, port)``, or None when there is nothing pre-bound."""
    return prebound.take(host, port) if prebound is not None else None


def reuseport_socket(host: str, port: int, *, listen: bool, backlog: int = 1024) -> socket.socket:
    """A TCP socket bound with SO_REUSEPORT (listening, or only holding the port)."""
    family, kind, proto, _name, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind(address)
        if listen:
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def listening_sockets(host: str, port: int, *, backlog: int = 1024) -> list[socket.socket]:
    """Non-blocking listening sockets for ``host:port``, as ``loop.create_server`` binds them.

    For adapters that accept connections themselves (the finger listener's
    answer-on-accept path): one socket per address the name resolves to
    (``localhost`` is 127.0.0.1 and ::1), ``SO_REUSEADDR`` set, IPv6 sockets
    IPv6-only. A failure closes whatever was already bound and propagates
    (``OSError``, ``socket.gaierror``), for the composition root to word.
    """
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                               flags=socket.AI_PASSIVE)
    made: list[socket.socket] = []
    seen: set[tuple[int, object]] = set()
    try:
        for family, kind, proto, _name, address in infos:
            if (family, address) in seen:
                continue
            seen.add((family, address))
            sock = socket.socket(family, kind, proto)
            made.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in made:
            sock.close()
        raise
    return made
