"""The finger listener's own accept path, over real sockets on SQLite and PostgreSQL.

A finger client sends its query as soon as it is connected. When the line is
already there at accept and the read cache holds the answer, the listener
answers on the spot; a connection with nothing to read yet waits in the
listener's waiting room; everything else goes on to a ``FingerProtocol``.
These tests put a connection on each of those paths deliberately (by
connecting before the listener starts accepting, or by waiting until the
listener holds the connection) and check what the client reads.
"""

from __future__ import annotations

import _socket
import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from fingerplat.adapters.finger.server import FingerServer, start_finger_server
from fingerplat.adapters.net import sockets
from fingerplat.adapters.net.waiting import WaitingRoom
from fingerplat.config import FingerConfig
from fingerplat.domain.model import Context
from fingerplat.domain.rules import PLAN_MAX_BYTES
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService
from tests.support.polling import until
from tests.support.scrape import sample

TIMEOUT = 5.0
FAST: dict[str, object] = {"rate_limit": 100_000, "max_connections": 1000, "idle_timeout": 5}


@pytest.fixture
async def cached(service: FingerplatService, operator: Context) -> AsyncIterator[None]:
    """A read cache as ``serve`` has one, and alice with a status and a plan."""
    service.enable_read_cache()
    await service.users.add_user(operator, None, "alice", full_name="Alice Liddell")
    await service.users.set_status(operator, None, "alice", "down the rabbit hole")
    await service.users.set_plan(operator, None, "alice", "Find the\nwhite rabbit.")
    yield
    service.disable_read_cache()


async def start(service: FingerplatService, metrics: Metrics,
                listener: socket.socket | None = None, **settings: object) -> FingerServer:
    """A finger listener; on ``listener`` when given (made before, as serve --workers does)."""
    config = FingerConfig(**{**FAST, **settings})
    prebound = None
    if listener is not None:
        prebound = sockets.PreboundSockets()
        prebound.put("127.0.0.1", 0, listener)
    return await start_finger_server(service, "127.0.0.1", 0, tenant=None,
                                     settings=config, metrics=metrics, prebound=prebound)


def address(server: FingerServer) -> tuple[str, int]:
    host, port = server.addresses[0].rsplit(":", 1)
    return host, int(port)


async def read_all(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), TIMEOUT)


async def ask(server: FingerServer, query: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(*address(server))
    writer.write(query)
    try:
        return await read_all(reader)
    finally:
        writer.close()


Client = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def queued_clients(queries: list[bytes]) -> tuple[socket.socket, list[Client]]:
    """A listening socket nobody accepts on yet, and clients that sent their queries to it.

    Started on it later, the listener finds every query already there at accept.
    """
    listener = sockets.listening_sockets("127.0.0.1", 0)[0]
    clients = []
    for query in queries:
        reader, writer = await asyncio.open_connection(*listener.getsockname()[:2])
        writer.write(query)
        await writer.drain()
        clients.append((reader, writer))
    return listener, clients


def close_all(clients: list[Client]) -> None:
    for _, writer in clients:
        writer.close()


async def stop(server: FingerServer) -> None:
    await server.close()
    await server.drain(1)


async def test_query_waiting_at_accept_is_answered_from_the_cache(
    service: FingerplatService, cached: None
) -> None:
    metrics = Metrics()
    server = await start(service, metrics)
    try:
        first = await ask(server, b"alice\r\n")  # a miss: read, rendered and kept
        assert first.startswith(b"Login: alice")
        assert server.instant_answers == 0
    finally:
        await stop(server)

    listener, clients = await queued_clients([b"alice\r\n", b"ALICE\n", b"alice\r\n"])
    server = await start(service, metrics, listener)
    try:
        answers = [await read_all(reader) for reader, _ in clients]
        assert answers[0] == answers[2] == first
        assert answers[1].startswith(b"Login: alice")  # its own line: its own entry
        # Two were answered on accept; the other line was not cached yet.
        assert server.instant_answers == 2
        assert server.open_connections() == 0
        assert sample(metrics, "fingerplat_requests_total", adapter="finger") == 4
    finally:
        close_all(clients)
        await stop(server)


async def test_a_client_that_is_slow_to_ask_waits_then_gets_its_answer(
    service: FingerplatService, cached: None
) -> None:
    metrics = Metrics()
    server = await start(service, metrics)
    try:
        expected = await ask(server, b"alice\r\n")
        reader, writer = await asyncio.open_connection(*address(server))
        room = server.waiting_room
        assert room is not None
        await until(lambda: len(room) == 1, "the listener holds the silent connection")
        assert sample(metrics, "fingerplat_open_connections", adapter="finger") == 1
        writer.write(b"alice\r\n")
        assert await read_all(reader) == expected
        writer.close()
        assert len(room) == 0
        assert server.instant_answers == 1

        # A line that trickles in: the first bytes leave the room, the rest
        # reaches the protocol that takes over.
        reader, writer = await asyncio.open_connection(*address(server))
        await until(lambda: len(room) == 1, "the listener holds the silent connection")
        writer.write(b"al")
        await until(lambda: len(room) == 0 and len(server.open) == 1, "a protocol took over")
        writer.write(b"ice\r\n")
        assert await read_all(reader) == expected
        writer.close()
    finally:
        await stop(server)


async def test_silent_connections_are_closed_at_the_idle_timeout(
    service: FingerplatService, cached: None
) -> None:
    metrics = Metrics()
    server = await start(service, metrics, idle_timeout=0.3)
    try:
        silent = [await asyncio.open_connection(*address(server)) for _ in range(3)]
        for reader, writer in silent:
            assert await read_all(reader) == b""
            writer.close()
        # Closed by the idle timeout and nothing else (how soon is no assertion).
        assert sample(metrics, "fingerplat_refused_connections_total", adapter="finger",
                      reason="idle_timeout") == 3
        assert server.open_connections() == 0
        assert (await ask(server, b"alice\r\n")).startswith(b"Login: alice")
    finally:
        await stop(server)


async def test_an_answer_bigger_than_the_socket_buffer_arrives_whole(
    service: FingerplatService, cached: None, operator: Context
) -> None:
    plan = "\n".join(f"line {n:05d} " + "x" * 60 for n in range(PLAN_MAX_BYTES // 72))
    await service.users.set_plan(operator, None, "alice", plan)
    metrics = Metrics()
    server = await start(service, metrics)
    try:
        expected = await ask(server, b"/W alice\r\n")
        assert len(expected) > PLAN_MAX_BYTES
    finally:
        await stop(server)

    # Small buffers on both ends, and a client that reads only later: the
    # answer cannot all be sent at accept, and the rest must follow.
    listener = sockets.listening_sockets("127.0.0.1", 0)[0]
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 2048)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    client.connect(listener.getsockname())
    client.sendall(b"/W alice\r\n")
    server = await start(service, metrics, listener)
    try:
        await until(lambda: server.instant_answers == 1, "answered on accept")
        await asyncio.sleep(0.1)
        client.setblocking(False)
        loop = asyncio.get_running_loop()
        received = b""
        while chunk := await asyncio.wait_for(loop.sock_recv(client, 65536), TIMEOUT):
            received += chunk
        assert received == expected
    finally:
        client.close()
        await stop(server)


async def test_refusals_on_accept_are_read_whole(
    service: FingerplatService, cached: None
) -> None:
    metrics = Metrics()
    listener, clients = await queued_clients([b"alice\r\n"] * 4)
    server = await start(service, metrics, listener, rate_limit=1)  # a burst of 2
    try:
        answers = [await read_all(reader) for reader, _ in clients]
        assert [a.startswith(b"Login: alice") for a in answers] == [True, True, False, False]
        assert answers[2] == answers[3] == (
            b"finger: too many queries from your address, please slow down\r\n")
        assert sample(metrics, "fingerplat_refused_connections_total", adapter="finger",
                      reason="rate_limit") == 2
    finally:
        close_all(clients)
        await stop(server)


@pytest.mark.parametrize("use_epoll", [True, False], ids=["epoll set", "loop readers"])
async def test_waiting_room_hands_back_ready_connections_and_closes_idle_ones(
    use_epoll: bool,
) -> None:
    loop = asyncio.get_running_loop()
    ready: list[tuple[str, float]] = []
    idle: list[float] = []
    room = WaitingRoom(loop, on_ready=lambda conn, peer, deadline: (
        ready.append((peer, deadline)), conn.close()),
        on_idle=lambda peer: idle.append(loop.time()), use_epoll=use_epoll)
    assert (room.epoll is not None) == use_epoll
    listener = sockets.listening_sockets("127.0.0.1", 0)[0]
    clients = [socket.create_connection(listener.getsockname()[:2]) for _ in range(3)]
    try:
        accepted = []
        for _ in clients:
            await until(lambda: _can_accept(listener), "a connection to accept")
            fd, _address = listener._accept()
            accepted.append(_socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, fd))
        now = loop.time()
        room.add(accepted[0], "first", now + 0.2)
        room.add(accepted[1], "second", now + 5)
        room.add(accepted[2], "third", now + 5)
        assert len(room) == 3
        clients[1].sendall(b"bob\r\n")
        await until(lambda: ready == [("second", now + 5)], "the second is handed back")
        await until(lambda: len(idle) == 1, "the first is closed for idleness")
        assert idle[0] >= now + 0.2
        assert clients[0].recv(10) == b""  # closed by the room
        assert len(room) == 1
        room.close()
        assert clients[2].recv(10) == b""
        assert len(room) == 0 and ready == [("second", now + 5)] and len(idle) == 1
    finally:
        for client in clients:
            client.close()
        listener.close()
        room.close()


def _can_accept(listener: socket.socket) -> bool:
    import select

    return bool(select.select([listener], [], [], 0)[0])


async def test_with_answer_on_accept_off_the_protocol_gives_the_same_answers(
    service: FingerplatService, cached: None
) -> None:
    """``[finger] answer_on_accept = false``: identical bytes, none answered on accept."""
    queries = [b"alice\r\n", b"/W alice\r\n", b"ALICE\n", b"nobody\r\n", b"\r\n"]
    answers: dict[bool, list[bytes]] = {}
    for on in (True, False):
        metrics = Metrics()
        server = await start(service, metrics, answer_on_accept=on)
        try:
            for query in queries:  # misses: read, rendered and kept
                await ask(server, query)
        finally:
            await stop(server)
        listener, clients = await queued_clients(queries)  # waiting at accept
        server = await start(service, metrics, listener, answer_on_accept=on)
        try:
            answers[on] = [await read_all(reader) for reader, _ in clients]
            if on:
                assert server.answered_on_accept >= 3  # the kept answers: the fast path
            else:
                assert server.answered_on_accept == 0  # every one went to a protocol
                assert server.instant_answers >= 3  # ... which answered from the same cache
            assert sample(metrics, "fingerplat_requests_total",
                          adapter="finger") == 2 * len(queries)
        finally:
            close_all(clients)
            await stop(server)
    assert answers[True] == answers[False]
    assert answers[True][0].startswith(b"Login: alice")
