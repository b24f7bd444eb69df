"""The web listener's connection caps over real sockets (SPEC section 11).

``[web] max_connections`` caps open web connections, and one client address
holds at most its share of them (a quarter unless
``max_connections_per_address`` says otherwise). Past either, the client
reads a ``503`` answer whole, never a hang or a reset. The caps count the
connections at the front door (fingerplat/adapters/web/front_door.py) and
those handed over to aiohttp alike.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import trustme

from fingerplat.adapters.net.trusted_proxies import TrustedProxies
from fingerplat.adapters.web.server import WebServer, start_web_server
from fingerplat.config import WebConfig
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService

TIMEOUT = 5.0
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
StartFn = Callable[..., Awaitable[WebServer]]


@pytest.fixture
async def start(service: FingerplatService) -> AsyncIterator[StartFn]:
    started: list[WebServer] = []

    async def _start(trusted: list[str] | None = None, **settings: Any) -> WebServer:
        config = WebConfig.model_validate({"listen": ["127.0.0.1:0"], **settings})
        server = await start_web_server(service, config, metrics=Metrics(),
                                        trusted=TrustedProxies(trusted or []))
        started.append(server)
        return server

    yield _start
    for server in started:
        await server.drain(2)


async def connect_from(server: WebServer, source: str) -> Conn:
    host, port = server.url.split("://", 1)[1].rsplit(":", 1)
    return await asyncio.wait_for(
        asyncio.open_connection(host, int(port), local_addr=(source, 0)), TIMEOUT)


async def get_from(server: WebServer, source: str, path: str = "/healthz") -> bytes:
    reader, writer = await connect_from(server, source)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
    try:
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


def status(answer: bytes) -> str:
    return answer.split(b"\r\n", 1)[0].decode()


# Silent connections stay at the front door; a request cut in the middle of
# its headers goes on to aiohttp: the caps must count both.
HOLDERS = {"silent": b"", "handed over": b"GET /healthz HTTP/1.1\r\nHost: x\r\n"}


@pytest.mark.parametrize("opening", list(HOLDERS.values()), ids=list(HOLDERS))
async def test_max_connections_answers_503_past_it(start: StartFn, opening: bytes) -> None:
    server = await start(max_connections=4)
    held = []
    try:
        for source in ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"):
            reader, writer = await connect_from(server, source)
            writer.write(opening)
            held.append((reader, writer))
        await until(lambda: server.door.open_count == 4, "four open connections")
        refused = await get_from(server, "127.0.0.5")
        assert status(refused) == "HTTP/1.1 503 Service Unavailable"
        assert refused.endswith(b"too many connections, please try again later\n")
        assert b"Retry-After: 1\r\n" in refused and b"Connection: close\r\n" in refused
        held.pop()[1].close()
        await until(lambda: server.door.open_count == 3, "one connection closed")
        assert status(await get_from(server, "127.0.0.5")) == "HTTP/1.1 200 OK"
    finally:
        for _, writer in held:
            writer.close()


@pytest.mark.parametrize("opening", list(HOLDERS.values()), ids=list(HOLDERS))
async def test_one_address_cannot_take_the_web_listener(start: StartFn, opening: bytes) -> None:
    server = await start(max_connections=100)  # a quarter: 25 per address
    held = []
    try:
        for _ in range(25):
            reader, writer = await connect_from(server, "127.0.0.1")
            writer.write(opening)
            held.append((reader, writer))
        await until(lambda: server.door.held.get("127.0.0.1") == 25, "25 held connections")
        refused = await get_from(server, "127.0.0.1")
        assert status(refused) == "HTTP/1.1 503 Service Unavailable"
        assert refused.endswith(b"too many connections from your address, please try again later\n")
        assert status(await get_from(server, "127.0.0.2")) == "HTTP/1.1 200 OK"
        scraped = (await get_from(server, "127.0.0.3", "/metrics")).decode()
        assert ('fingerplat_refused_connections_total{adapter="web",'
                'reason="max_connections_per_address"} 1.0') in scraped, scraped
    finally:
        for _, writer in held:
            writer.close()
    await until(lambda: server.door.open_count == 0, "every connection let go")
    assert server.door.held == {}


async def test_a_trusted_proxy_is_not_held_to_a_share(start: StartFn) -> None:
    server = await start(max_connections=100, max_connections_per_address=2,
                         trusted=["127.0.0.9/32"])
    held = [await connect_from(server, "127.0.0.9") for _ in range(5)]
    try:
        await until(lambda: server.door.held.get("127.0.0.9") == 5, "five from the proxy")
        assert status(await get_from(server, "127.0.0.9")) == "HTTP/1.1 200 OK"
    finally:
        for _, writer in held:
            writer.close()


async def test_connections_opened_before_the_share_mattered_still_count(start: StartFn) -> None:
    """Addresses are looked up only from max_per_address open connections on; none is lost."""
    server = await start(max_connections=100, max_connections_per_address=3)
    held = [await connect_from(server, "127.0.0.1") for _ in range(2)]
    try:
        await until(lambda: server.door.open_count == 2, "two open")
        held.append(await connect_from(server, "127.0.0.2"))  # the third: every one attributed
        await until(lambda: server.door.held == {"127.0.0.1": 2, "127.0.0.2": 1}, "attributed")
        held.append(await connect_from(server, "127.0.0.1"))
        await until(lambda: server.door.held.get("127.0.0.1") == 3, "the third from .1")
        refused = await get_from(server, "127.0.0.1")
        assert status(refused) == "HTTP/1.1 503 Service Unavailable"
        assert status(await get_from(server, "127.0.0.2")) == "HTTP/1.1 200 OK"
    finally:
        for _, writer in held:
            writer.close()
    await until(lambda: server.door.open_count == 0 and server.door.held == {}, "all let go")


async def test_max_connections_answers_503_over_https(start: StartFn, tmp_path: Path) -> None:
    """Over TLS the refusal comes after the handshake, encrypted like any answer."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    context = ssl.create_default_context()
    ca.configure_trust(context)
    server = await start(max_connections=1, tls_cert=str(cert_file), tls_key=str(key_file))
    host, port = server.url.split("://", 1)[1].rsplit(":", 1)

    async def get() -> bytes:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, int(port), ssl=context), TIMEOUT)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        try:
            return await asyncio.wait_for(reader.read(), TIMEOUT)
        finally:
            writer.close()

    _reader, holder = await asyncio.wait_for(
        asyncio.open_connection(host, int(port), ssl=context), TIMEOUT)
    try:
        await until(lambda: server.door.open_count == 1, "one open connection")
        refused = await get()
        assert status(refused) == "HTTP/1.1 503 Service Unavailable"
        assert refused.endswith(b"too many connections, please try again later\n")
        assert b"Strict-Transport-Security: " in refused
    finally:
        holder.close()
    await until(lambda: server.door.open_count == 0, "the holder let go")
    assert status(await get()) == "HTTP/1.1 200 OK"
