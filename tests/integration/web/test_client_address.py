"""The web client behind a trusted proxy, over real sockets (SPEC section 12).

``X-Forwarded-For`` / ``Forwarded`` name the client only when the request
comes from ``[network] trusted_proxies``; with ``proxy_protocol = true`` the
PROXY header does. Either way the client is who the audit, the access log
and the per-address limits see; from anyone else a PROXY connection is
closed with no answer.
"""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from fingerplat.adapters.web.server import WebServer
from fingerplat.domain.model import AuditQuery, Context, TokenScope
from fingerplat.service import FingerplatService
from tests.integration.web import test_connection_caps as caps
from tests.integration.web.test_connection_caps import TIMEOUT, StartFn

start = caps.start  # fixture: a web listener with trusted proxies
PROXY = "127.0.0.1"


@pytest.fixture
async def token(service: FingerplatService, operator: Context) -> str:
    await service.users.add_user(operator, None, "alice")
    return (await service.credentials.create_token(
        operator, TokenScope.USER, username="alice")).secret


async def send(server: WebServer, data: bytes, *, source: str = PROXY) -> bytes:
    host, port = server.url.split("://", 1)[1].rsplit(":", 1)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, int(port), local_addr=(source, 0)), TIMEOUT)
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    except ConnectionResetError:
        return b"<reset>"
    finally:
        writer.close()


def put_status(token: str, status: str, extra: str = "") -> bytes:
    body = json.dumps({"status": status}).encode()
    return (f"PUT /api/v1/tenants/default/users/alice/status HTTP/1.1\r\nHost: localhost\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}\r\n").encode() + body


async def last_remote(service: FingerplatService, operator: Context) -> str | None:
    events = await service.audit.audit_log(operator, AuditQuery(limit=1))
    assert events[0].action == "status.set"
    return events[0].remote_addr


async def test_forwarded_for_is_honoured_from_a_trusted_proxy_only(
    start: StartFn, service: FingerplatService, operator: Context, token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fingerplat.web")
    server = await start(trusted=[f"{PROXY}/32"])
    answer = await send(server, put_status(token, "one",
                                           "X-Forwarded-For: 6.6.6.6, 127.0.0.66\r\n"))
    assert answer.startswith(b"HTTP/1.1 200")
    assert await last_remote(service, operator) == "127.0.0.66"
    assert any(r.getMessage().startswith("127.0.0.66 ") for r in caplog.records
               if r.name == "fingerplat.web")
    answer = await send(server, put_status(token, "two", 'Forwarded: for="127.0.0.67:555"\r\n'))
    assert answer.startswith(b"HTTP/1.1 200")
    assert await last_remote(service, operator) == "127.0.0.67"
    # From an address that is not a trusted proxy, the header means nothing.
    answer = await send(server, put_status(token, "three", "X-Forwarded-For: 127.0.0.66\r\n"),
                        source="127.0.0.2")
    assert answer.startswith(b"HTTP/1.1 200")
    assert await last_remote(service, operator) == "127.0.0.2"


async def test_without_trusted_proxies_forwarded_for_is_ignored(
    start: StartFn, service: FingerplatService, operator: Context, token: str,
) -> None:
    server = await start()
    answer = await send(server, put_status(token, "one", "X-Forwarded-For: 127.0.0.66\r\n"))
    assert answer.startswith(b"HTTP/1.1 200")
    assert await last_remote(service, operator) == PROXY


async def test_proxy_protocol_names_the_client_on_the_web(
    start: StartFn, service: FingerplatService, operator: Context, token: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="fingerplat.web")
    server = await start(trusted=[f"{PROXY}/32"], proxy_protocol=True)
    header = b"PROXY TCP4 127.0.0.88 127.0.0.1 40000 80\r\n"
    answer = await send(server, header + put_status(token, "behind haproxy"))
    assert answer.startswith(b"HTTP/1.1 200")
    assert await last_remote(service, operator) == "127.0.0.88"
    # Kept pages answered by the front door log the client too.
    service.enable_read_cache()
    try:
        page = b"GET /~alice HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        for _ in range(2):
            assert (await send(server, header + page)).startswith(b"HTTP/1.1 200")
        assert server.door.answered == 1
    finally:
        service.disable_read_cache()
    lines = [r.getMessage() for r in caplog.records if r.name == "fingerplat.web"
             and "GET /~alice" in r.getMessage()]
    assert len(lines) == 2 and all(line.startswith("127.0.0.88 ") for line in lines)
    # No header, a bad one, or an untrusted sender: closed with no answer.
    for data, source in ((page, PROXY), (b"PROXY TCP4 x\r\n" + page, PROXY),
                         (header + page, "127.0.0.2")):
        assert await send(server, data, source=source) in (b"", b"<reset>")


async def test_the_share_per_address_applies_to_the_client_behind_the_proxy(
    start: StartFn,
) -> None:
    """Each client a PROXY header names holds its own share; the proxy holds none."""
    server = await start(trusted=[f"{PROXY}/32"], proxy_protocol=True, max_connections=100,
                         max_connections_per_address=2)
    host, port = server.url.split("://", 1)[1].rsplit(":", 1)
    header = b"PROXY TCP4 127.0.0.77 127.0.0.1 40000 80\r\n"
    held = []
    try:
        for _ in range(2):  # a request cut short: held, at aiohttp, under the client
            _reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, int(port), local_addr=(PROXY, 0)), TIMEOUT)
            writer.write(header + b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            held.append(writer)
        await caps.until(lambda: server.door.held == {"127.0.0.77": 2}, "two held by the client")
        page = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        refused = await send(server, header + page)
        assert caps.status(refused) == "HTTP/1.1 503 Service Unavailable"
        assert refused.endswith(b"too many connections from your address, please try again later\n")
        other = b"PROXY TCP4 127.0.0.78 127.0.0.1 40000 80\r\n"
        assert caps.status(await send(server, other + page)) == "HTTP/1.1 200 OK"
    finally:
        for writer in held:
            writer.close()
    await caps.until(lambda: server.door.open_count == 0 and server.door.held == {}, "all let go")
