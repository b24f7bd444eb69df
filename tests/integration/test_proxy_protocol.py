"""PROXY protocol headers on the finger and setter listeners, over real sockets (SPEC 12).

With ``proxy_protocol = true`` a listener reads a v1 or v2 header first, and
only from ``[network] trusted_proxies``: the address it names is the one
logged, audited, rate-limited and held to its share of connections. From
anyone else, or with no valid header, the connection is closed with no
answer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct

import pytest

from fingerplat.adapters.finger.server import FingerServer, start_finger_server
from fingerplat.adapters.net.trusted_proxies import TrustedProxies
from fingerplat.adapters.setter.server import SetterServer, start_setter_server
from fingerplat.config import FingerConfig, SetterConfig
from fingerplat.domain.model import AuditQuery, Context, TokenScope
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService

TIMEOUT = 5.0
PROXY = "127.0.0.1"  # the load balancer, as the listener sees it


def v1(client: str, port: int = 40000) -> bytes:
    return f"PROXY TCP4 {client} 127.0.0.1 {port} 79\r\n".encode()


def v2(client: str, port: int = 40000, *, local: bool = False) -> bytes:
    block = (ipaddress.IPv4Address(client).packed + ipaddress.IPv4Address("127.0.0.1").packed
             + struct.pack("!HH", port, 79))
    command = 0x20 if local else 0x21
    return (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([command, 0x11]) + struct.pack("!H", len(block))
            + block)


async def exchange(address: str, data: bytes, *, source: str = PROXY,
                   pieces: int = 1) -> bytes:
    host, port = address.rsplit(":", 1)
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection(host, int(port), local_addr=(source, 0)), TIMEOUT)
    try:
        step = max(1, len(data) // pieces)
        for at in range(0, len(data), step):  # a header split across packets
            writer.write(data[at:at + step])
            await writer.drain()
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    except ConnectionResetError:
        return b"<reset>"
    finally:
        writer.close()


@pytest.fixture
async def alice(service: FingerplatService, operator: Context) -> None:
    await service.users.add_user(operator, None, "alice", full_name="Alice Liddell")


@pytest.fixture
async def finger(service: FingerplatService, alice: None):  # type: ignore[no-untyped-def]
    servers: list[FingerServer] = []

    async def _start(**settings: object) -> FingerServer:
        config = FingerConfig(**{"proxy_protocol": True, "idle_timeout": 5, **settings})
        server = await start_finger_server(service, "127.0.0.1", 0, tenant=None,
                                           settings=config, metrics=Metrics(),
                                           trusted=TrustedProxies([f"{PROXY}/32"]))
        servers.append(server)
        return server

    yield _start
    for server in servers:
        await server.close()
        await server.drain(1)


@pytest.mark.parametrize("header", [v1, v2], ids=["v1", "v2"])
@pytest.mark.parametrize("pieces", [1, 3], ids=["one packet", "split"])
async def test_finger_answers_and_logs_the_client_behind_the_proxy(
    finger, header, pieces: int, caplog: pytest.LogCaptureFixture  # type: ignore[no-untyped-def]
) -> None:
    caplog.set_level("INFO", logger="fingerplat.finger.access")
    server = await finger()
    answer = await exchange(server.addresses[0], header("127.0.0.77") + b"alice\r\n",
                            pieces=pieces)
    assert b"Login: alice" in answer
    records = [r.getMessage() for r in caplog.records if r.name == "fingerplat.finger.access"]
    assert len(records) == 1 and records[0].startswith("127.0.0.77 alice -> ")


async def test_finger_health_check_with_a_local_header_is_answered(finger) -> None:  # type: ignore[no-untyped-def]
    server = await finger()
    assert b"Login: alice" in await exchange(server.addresses[0],
                                             v2("127.0.0.1", local=True) + b"alice\r\n")


@pytest.mark.parametrize("data", [
    b"alice\r\n",  # no header at all
    b"PROXY TCP4 127.0.0.77 127.0.0.1 +1 79\r\nalice\r\n",  # a malformed one
    b"\r\n\r\n\x00\r\nQUIT\n\x11\x11\x00\x00alice\r\n",  # v2 with version 1
])
async def test_finger_without_a_valid_header_is_closed_unanswered(
    finger, data: bytes  # type: ignore[no-untyped-def]
) -> None:
    server = await finger()
    assert await exchange(server.addresses[0], data) in (b"", b"<reset>")


async def test_finger_from_an_untrusted_address_is_closed_unanswered(finger) -> None:  # type: ignore[no-untyped-def]
    server = await finger()
    answer = await exchange(server.addresses[0], v1("127.0.0.77") + b"alice\r\n",
                            source="127.0.0.2")
    assert answer in (b"", b"<reset>")


async def test_finger_rate_limit_and_share_apply_to_the_client(finger) -> None:  # type: ignore[no-untyped-def]
    server = await finger(rate_limit=1)  # a burst of 2 per client
    address = server.addresses[0]
    for _ in range(2):
        assert b"Login: alice" in await exchange(address, v1("127.0.0.77") + b"alice\r\n")
    assert await exchange(address, v1("127.0.0.77") + b"alice\r\n") == (
        b"finger: too many queries from your address, please slow down\r\n")
    # Another client behind the same proxy is not slowed down by it.
    assert b"Login: alice" in await exchange(address, v1("127.0.0.78") + b"alice\r\n")


async def test_finger_share_per_client_behind_the_proxy(finger) -> None:  # type: ignore[no-untyped-def]
    server = await finger(max_connections=100, max_connections_per_address=1)
    host, port = server.addresses[0].rsplit(":", 1)
    _reader, writer = await asyncio.open_connection(host, int(port), local_addr=(PROXY, 0))
    writer.write(v1("127.0.0.77") + b"ali")  # holds one connection for 127.0.0.77
    try:
        for _ in range(250):
            if server.held.get("127.0.0.77") == 1:
                break
            await asyncio.sleep(0.02)
        assert await exchange(server.addresses[0], v1("127.0.0.77") + b"alice\r\n") == (
            b"finger: too many connections from your address, please try again later\r\n")
        assert b"Login: alice" in await exchange(server.addresses[0],
                                                 v1("127.0.0.78") + b"alice\r\n")
    finally:
        writer.close()


# -- setter -------------------------------------------------------------------------


@pytest.fixture
async def setter(service: FingerplatService, alice: None):  # type: ignore[no-untyped-def]
    servers: list[SetterServer] = []

    async def _start(**settings: object) -> SetterServer:
        server = await start_setter_server(
            service, "127.0.0.1", 0, settings=SetterConfig(proxy_protocol=True, **settings),
            metrics=Metrics(), trusted=TrustedProxies([f"{PROXY}/32"]))
        servers.append(server)
        return server

    yield _start
    for server in servers:
        await server.close()
        await server.drain(1)


@pytest.mark.parametrize("header", [v1, v2], ids=["v1", "v2"])
async def test_setter_audits_the_client_behind_the_proxy(
    setter, service: FingerplatService, operator: Context, header  # type: ignore[no-untyped-def]
) -> None:
    token = (await service.credentials.create_token(
        operator, TokenScope.USER, username="alice")).secret
    server = await setter()
    answer = await exchange(server.addresses[0], header("127.0.0.77")
                            + f"AUTH {token}\r\nSET alice proxied\r\nQUIT\r\n".encode())
    assert b"+OK status of alice set\r\n" in answer
    events = await service.audit.audit_log(operator, AuditQuery(limit=5))
    changed = next(e for e in events if e.action == "status.set")
    assert changed.remote_addr == "127.0.0.77"


async def test_setter_without_a_valid_header_or_trusted_proxy_is_closed_unanswered(
    setter  # type: ignore[no-untyped-def]
) -> None:
    server = await setter()
    address = server.addresses[0]
    assert await exchange(address, b"QUIT\r\n") in (b"", b"<reset>")
    assert await exchange(address, v1("127.0.0.77") + b"QUIT\r\n",
                          source="127.0.0.2") in (b"", b"<reset>")
    assert await exchange(address, v1("127.0.0.77") + b"QUIT\r\n") == b"+OK bye\r\n"


async def test_setter_share_applies_to_the_client(setter) -> None:  # type: ignore[no-untyped-def]
    server = await setter(max_connections=100, max_connections_per_address=1)
    host, port = server.addresses[0].rsplit(":", 1)
    _reader, writer = await asyncio.open_connection(host, int(port), local_addr=(PROXY, 0))
    writer.write(v1("127.0.0.77"))
    try:
        for _ in range(250):
            if server.per_address.get("127.0.0.77") == 1:
                break
            await asyncio.sleep(0.02)
        assert await exchange(server.addresses[0], v1("127.0.0.77") + b"QUIT\r\n") == (
            b"-ERR too many connections from your address, please try again later\r\n")
        assert await exchange(server.addresses[0], v1("127.0.0.78") + b"QUIT\r\n") == (
            b"+OK bye\r\n")
    finally:
        writer.close()
