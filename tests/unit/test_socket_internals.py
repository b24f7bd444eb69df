"""CPython's private socket names, as the shared accept machinery uses them, still work.

``fingerplat/adapters/net/accept.py`` takes connections with
``socket.socket._accept()`` (a descriptor and an address, no Python socket
object) and wraps the descriptor in a bare ``_socket.socket``: the public
``socket.accept()`` builds a ``socket.socket`` in Python and converts family
and type to enums, which costs more than the rest of a kept finger answer.
Neither name is documented; when a Python upgrade changes them, this test
fails first, naming them, instead of every listener failing at accept.
"""

from __future__ import annotations

import _socket
import socket
import sys

from fingerplat.adapters.net import sockets

WHERE = "fingerplat/adapters/net/accept.py (Acceptor._accept_ready)"


def test_private_accept_gives_a_descriptor_a_bare_socket_can_own() -> None:
    listener = sockets.listening_sockets("127.0.0.1", 0)[0]
    listener.setblocking(True)
    client = socket.create_connection(listener.getsockname()[:2])
    try:
        accept = getattr(listener, "_accept", None)
        assert callable(accept), (
            f"socket.socket._accept is gone in Python {sys.version.split()[0]}: "
            f"adapt {WHERE} (socket.accept() is the public, slower way)")
        fd, address = accept()
        assert isinstance(fd, int) and isinstance(address, tuple), (
            f"socket.socket._accept() returned {fd!r}, {address!r}: adapt {WHERE}")
        conn = _socket.socket(int(listener.family), int(listener.type), listener.proto, fd)
        try:
            client.sendall(b"alice\r\n")
            assert conn.recv(100) == b"alice\r\n"
            assert conn.send(b"ok", socket.MSG_DONTWAIT) == 2
            assert client.recv(100) == b"ok"
            # A handover wraps the descriptor in a socket.socket (detach: one owner).
            wrapped = socket.socket(conn.family, conn.type, conn.proto, conn.detach())
            assert conn.fileno() == -1 and wrapped.fileno() == fd
            wrapped.close()
        finally:
            conn.close()
    finally:
        client.close()
        listener.close()
