"""The finger listener under one hostile address, and at shutdown (SPEC section 11).

One address opening many silent connections gets its share of
``max_connections`` (a quarter unless ``max_connections_per_address`` says
otherwise) and then the one-line refusal, read whole, while another address
is still answered, on the accept path and on the handed-over one alike. On
SIGTERM (drain), a query already partly received is still answered.
"""

from __future__ import annotations

import asyncio

import pytest

from fingerplat.adapters.finger.server import FingerServer
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService
from tests.integration import test_finger_accept as base
from tests.integration.test_finger_accept import TIMEOUT, address, read_all, start, stop, until
from tests.support.scrape import sample

cached = base.cached  # a read cache and alice (fixture)

REFUSED = b"finger: too many connections from your address, please try again later\r\n"


async def connect_from(server: FingerServer, source: str) -> tuple[asyncio.StreamReader,
                                                                   asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(
        *address(server), local_addr=(source, 0)), TIMEOUT)


async def ask_from(server: FingerServer, source: str, query: bytes) -> bytes:
    reader, writer = await connect_from(server, source)
    writer.write(query)
    try:
        return await read_all(reader)
    finally:
        writer.close()


@pytest.mark.parametrize("read_cache", [True, False], ids=["cached", "uncached"])
async def test_one_address_cannot_take_the_finger_listener(
    service: FingerplatService, cached: None, read_cache: bool
) -> None:
    if not read_cache:
        service.disable_read_cache()
    metrics = Metrics()
    server = await start(service, metrics, max_connections=100)  # a quarter: 25 each
    flood = []
    try:
        for _ in range(25):
            flood.append(await connect_from(server, "127.0.0.1"))
        await until(lambda: server.held.get("127.0.0.1") == 25, "25 held connections")
        # Past its share, the flooding address reads its refusal whole (no reset),
        # even with its query already sent.
        for _ in range(3):
            assert await ask_from(server, "127.0.0.1", b"alice\r\n") == REFUSED
        assert sample(metrics, "fingerplat_refused_connections_total", adapter="finger",
                      reason="max_connections_per_address") == 3
        # Another address is answered (the listener is far from max_connections).
        assert b"Login: alice" in await ask_from(server, "127.0.0.2", b"alice\r\n")
        # A held connection that goes frees its place.
        flood.pop()[1].close()
        await until(lambda: server.held.get("127.0.0.1") == 24, "one connection let go")
        assert b"Login: alice" in await ask_from(server, "127.0.0.1", b"alice\r\n")
    finally:
        for _, writer in flood:
            writer.close()
        await stop(server)


async def test_the_share_can_be_set(service: FingerplatService, cached: None) -> None:
    server = await start(service, Metrics(), max_connections=100, max_connections_per_address=1)
    try:
        _reader, writer = await connect_from(server, "127.0.0.3")
        writer.write(b"ali")  # held by a protocol: a partial query
        await until(lambda: server.held.get("127.0.0.3") == 1, "the partial query")
        assert await ask_from(server, "127.0.0.3", b"alice\r\n") == REFUSED
        assert b"Login: alice" in await ask_from(server, "127.0.0.4", b"alice\r\n")
        writer.close()
    finally:
        await stop(server)


@pytest.mark.parametrize("read_cache", [True, False], ids=["cached", "uncached"])
async def test_drain_answers_a_query_already_started(
    service: FingerplatService, cached: None, read_cache: bool
) -> None:
    if not read_cache:
        service.disable_read_cache()
    server = await start(service, Metrics(), idle_timeout=5)
    started_reader, started = await connect_from(server, "127.0.0.1")
    idle_reader, idle = await connect_from(server, "127.0.0.1")
    started.write(b"ali")
    await until(lambda: any(p.started for p in server.open), "the partial query")
    await until(lambda: len(server.waiting_room or ()) == 1, "the silent one waiting")
    await server.close()
    drain = asyncio.create_task(server.drain(5))
    try:
        assert await read_all(idle_reader) == b""  # nothing asked: closed at once
        started.write(b"ce\r\n")
        assert b"Login: alice" in await read_all(started_reader)
        await asyncio.wait_for(drain, TIMEOUT)
    finally:
        started.close()
        idle.close()
