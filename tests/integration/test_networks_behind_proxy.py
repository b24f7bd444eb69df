"""Rejected networks when the client comes through a trusted proxy (SPEC sections 12, 13).

The client address is the one the listener established from the PROXY header
(finger) or ``X-Forwarded-For`` (web) of a trusted proxy; the tenant's
networks are checked against it, not against the proxy's own address, also
for answers the read cache already keeps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fingerplat.adapters.finger.server import FingerServer, start_finger_server
from fingerplat.adapters.net.trusted_proxies import TrustedProxies
from fingerplat.config import FingerConfig
from fingerplat.domain.model import Context
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService
from tests.integration.test_proxy_protocol import PROXY, exchange, v1, v2
from tests.integration.web import test_connection_caps as caps
from tests.integration.web.test_client_address import send

start = caps.start  # fixture: a web listener with trusted proxies


@pytest.fixture
async def rejecting(service: FingerplatService, operator: Context) -> FingerplatService:
    await service.users.add_user(operator, None, "alice", full_name="Alice Liddell")
    await service.users.set_status(operator, None, "alice", "in the lab")
    await service.tenants.update_tenant(operator, None, add_rejected_networks=["192.0.2.0/24"])
    service.enable_read_cache()
    return service


@pytest.fixture
async def finger(rejecting: FingerplatService) -> AsyncIterator[FingerServer]:
    server = await start_finger_server(
        rejecting, "127.0.0.1", 0, tenant=None,
        settings=FingerConfig(proxy_protocol=True, idle_timeout=5), metrics=Metrics(),
        trusted=TrustedProxies([f"{PROXY}/32"]))
    yield server
    await server.close()
    await server.drain(1)


async def test_finger_checks_the_client_the_proxy_names(finger: FingerServer) -> None:
    address = finger.addresses[0].split(" ")[0]
    for _ in range(2):  # the second answer to the allowed client comes from the cache
        allowed = await exchange(address, v1("198.51.100.7") + b"alice\r\n")
        assert b"Status: in the lab" in allowed
    for header in (v1("192.0.2.9"), v2("192.0.2.10")):
        refused = await exchange(address, header + b"alice\r\n")
        assert refused == b"finger: your network is not allowed to finger this site\r\n"


async def test_web_checks_the_client_the_proxy_forwards(start: caps.StartFn,
                                                        rejecting: FingerplatService) -> None:
    server = await start(trusted=[f"{PROXY}/32"])

    def get(path: str, client: str) -> bytes:
        return (f"GET {path} HTTP/1.1\r\nHost: localhost\r\nX-Forwarded-For: {client}\r\n"
                "Connection: close\r\n\r\n").encode()

    for _ in range(2):  # a kept page, asked again
        page = await send(server, get("/~alice", "198.51.100.7"))
        assert page.startswith(b"HTTP/1.1 200") and b"in the lab" in page
    for path in ("/~alice", "/api/v1/tenants/default/users/alice"):
        refused = await send(server, get(path, "192.0.2.9"))
        assert refused.startswith(b"HTTP/1.1 403"), path
