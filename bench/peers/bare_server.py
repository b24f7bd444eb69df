#!/usr/bin/env python3
"""The reference floor: a finger server that does nothing but answer.

It reads the query line (up to CRLF/LF, at most 512 bytes), writes one fixed
answer and closes: no parsing, no database, no logging. Whatever fingerplat
spends above this per query is what the platform costs, so the benchmark
reports fingerplat as a ratio to it, measured in the same run on the same
machine.

Two implementations, so the floor itself is known:

* ``--impl asyncio`` (default): an ``asyncio.Protocol`` on uvloop when it is
  installed: the best a Python asyncio server can do.
* ``--impl epoll``: a hand-written ``select.epoll`` loop, no framework at all.

It prints ``finger listening on HOST:PORT`` like ``fingerplat serve`` so the
same harness drives both, and exits 0 on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import select
import signal
import socket
import sys

ANSWER = (
    b"Login: bench000001\t\t\tName: Bench User\r\n"
    b"Status: working on the benchmark (set 2026-11-21 21:00 UTC)\r\n"
    b"No plan.\r\n"
)
MAX_QUERY = 512


class _Answer(asyncio.Protocol):
    __slots__ = ("_buf", "_transport")

    def __init__(self) -> None:
        self._buf = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._buf += data
        if b"\n" in self._buf or len(self._buf) > MAX_QUERY:
            assert self._transport is not None
            self._transport.write(ANSWER)
            self._transport.close()


async def serve_asyncio(host: str, port: int, backlog: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(_Answer, host, port, backlog=backlog, reuse_address=True)
    sock = server.sockets[0].getsockname()
    print(f"finger listening on {sock[0]}:{sock[1]}", flush=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


def serve_epoll(host: str, port: int, backlog: int) -> None:
    """Level-triggered epoll: accept everything pending, answer each client once."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(backlog)
    listener.setblocking(False)
    name = listener.getsockname()
    print(f"finger listening on {name[0]}:{name[1]}", flush=True)
    running = True

    def _stop(_sig: int, _frame: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    ep = select.epoll()
    lfd = listener.fileno()
    ep.register(lfd, select.EPOLLIN)
    conns: dict[int, tuple[socket.socket, bytearray]] = {}
    while running:
        try:
            events = ep.poll(0.5)
        except InterruptedError:
            continue
        for fd, _mask in events:
            if fd == lfd:
                while True:
                    try:
                        conn, _ = listener.accept()
                    except BlockingIOError:
                        break
                    except OSError as exc:
                        if exc.errno in (errno.EMFILE, errno.ENFILE):
                            break
                        raise
                    conn.setblocking(False)
                    conns[conn.fileno()] = (conn, bytearray())
                    ep.register(conn.fileno(), select.EPOLLIN)
                continue
            conn, buf = conns[fd]
            try:
                data = conn.recv(4096)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if data:
                buf += data
                if b"\n" not in buf and len(buf) <= MAX_QUERY:
                    continue
                with contextlib.suppress(OSError):
                    conn.send(ANSWER)  # small: fits the socket buffer in one go
            ep.unregister(fd)
            del conns[fd]
            conn.close()
    ep.close()
    listener.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Bare finger server writing a fixed answer.")
    p.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: a free one)")
    p.add_argument("--impl", choices=("asyncio", "epoll"), default="asyncio")
    p.add_argument("--no-uvloop", action="store_true", help="plain asyncio event loop")
    p.add_argument("--backlog", type=int, default=1024)
    args = p.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    if args.impl == "epoll":
        serve_epoll(host, int(port), args.backlog)
        return 0
    factory = None
    if not args.no_uvloop:
        try:
            import uvloop

            factory = uvloop.new_event_loop
        except ImportError:
            pass
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(serve_asyncio(host, int(port), args.backlog))
    return 0


if __name__ == "__main__":
    sys.exit(main())
