"""Fixtures: the real web listener over real sockets, on both databases.

``web_server`` starts the server the way ``fingerplat serve`` does (through
``start_web_server``) on 127.0.0.1 with a free port over the ``service``
fixture. ``web_server_factory`` does the same with other ``[web]`` settings
(TLS, template overrides, body limits).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest

from fingerplat.adapters.web.server import WebServer, start_web_server
from fingerplat.config import WebConfig
from fingerplat.domain.model import Context, TokenScope
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService


@dataclass
class RunningWeb:
    url: str  # e.g. "http://127.0.0.1:40123" (no trailing slash)
    service: FingerplatService
    metrics: Metrics
    server: WebServer
    settings: WebConfig


WebFactory = Callable[..., Awaitable[RunningWeb]]


@pytest.fixture
async def web_server_factory(service: FingerplatService) -> AsyncIterator[WebFactory]:
    started: list[WebServer] = []

    async def start(**settings: Any) -> RunningWeb:
        settings.setdefault("listen", ["127.0.0.1:0"])
        config = WebConfig.model_validate(settings)
        metrics = Metrics()
        server = await start_web_server(service, config, metrics=metrics)
        started.append(server)
        return RunningWeb(server.url, service, metrics, server, config)

    yield start
    for server in started:
        await server.drain(5)


@pytest.fixture
async def web_server(web_server_factory: WebFactory) -> RunningWeb:
    return await web_server_factory()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client session that never follows redirects and never waits forever."""
    timeout = aiohttp.ClientTimeout(total=20)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield session


@dataclass
class Seeded:
    """Two tenants with users and one token of each kind, made through the service."""

    alice_token: str  # user token of alice@default
    bob_token: str  # user token of bob@default
    default_admin_token: str  # tenant-admin token of default
    acme_admin_token: str  # tenant-admin token of acme
    acme_carol_token: str  # user token of carol@acme
    platform_token: str


@pytest.fixture
async def seeded(service: FingerplatService, operator: Context) -> Seeded:
    await service.tenants.create_tenant(
        operator, "acme", name="Acme Corp", domains=["acme.example"])
    await service.users.add_user(operator, None, "alice", full_name="Alice Liddell",
                           project="Down the rabbit hole")
    await service.users.add_user(operator, None, "bob", full_name="Bob Builder")
    await service.users.add_user(operator, None, "ghost", full_name="Hidden Ghost", hidden=True)
    await service.users.add_user(operator, "acme", "carol", full_name="Carol Acme")
    await service.users.set_status(operator, None, "alice", "reading")
    await service.users.set_status(operator, None, "ghost", "invisible")
    await service.users.set_status(operator, "acme", "carol", "at the anvil factory")

    async def token(scope: TokenScope, tenant: str | None = None, user: str | None = None) -> str:
        issued = await service.credentials.create_token(
            operator, scope, tenant_name=tenant, username=user)
        return issued.secret

    return Seeded(
        alice_token=await token(TokenScope.USER, None, "alice"),
        bob_token=await token(TokenScope.USER, None, "bob"),
        default_admin_token=await token(TokenScope.TENANT, None),
        acme_admin_token=await token(TokenScope.TENANT, "acme"),
        acme_carol_token=await token(TokenScope.USER, "acme", "carol"),
        platform_token=await token(TokenScope.PLATFORM),
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
