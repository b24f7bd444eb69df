"""A small world for the service tests: two tenants, users in each, real tokens.

Principals come from the real credential paths (a token created and then
authenticated), never built by hand, so these tests also prove that a token
turns into exactly the principal the permission rules expect.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from fingerplat.bootstrap import open_service
from fingerplat.domain.model import AuditEvent, AuditQuery, Channel, Context, Principal, TokenScope
from fingerplat.repository.schema import audit_chain_heads, audit_events, auth_throttle, metadata
from fingerplat.service import FingerplatService
from tests.support.memory_storage import MemoryStorage


class Clock:
    """A clock the test moves by hand (injected with ``FingerplatService(clock=...)``)."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def clocked(database_url: str, clock: Clock) -> AsyncIterator[FingerplatService]:
    """A service on the test database whose time is ``clock``."""
    async with open_service(database_url, prepare=False, clock=clock) as wired:
        yield wired.service


@dataclass
class World:
    """acme (domain acme.example): alice, bob, hidden ghost; globex: carol."""

    service: FingerplatService
    operator: Context
    contexts: dict[str, Context] = field(default_factory=dict)
    token_ids: dict[str, int] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)

    def ctx(self, who: str) -> Context:
        return self.contexts[who]


async def make_world(service: FingerplatService, operator: Context) -> World:
    world = World(service, operator)
    await service.tenants.create_tenant(operator, "acme", name="Acme", domains=["acme.example"])
    await service.tenants.create_tenant(operator, "globex", name="Globex")
    await service.users.add_user(operator, "acme", "alice", full_name="Alice Liddell")
    await service.users.add_user(operator, "acme", "bob")
    await service.users.add_user(operator, "acme", "ghost", hidden=True)
    await service.users.add_user(operator, "globex", "carol")
    await service.users.set_status(operator, "globex", "carol", "at the globex office")
    await service.users.set_plan(operator, "globex", "carol", "carol's plan")
    tokens = {
        "acme_admin": (TokenScope.TENANT, "acme", None),
        "globex_admin": (TokenScope.TENANT, "globex", None),
        "alice": (TokenScope.USER, "acme", "alice"),
        "carol": (TokenScope.USER, "globex", "carol"),
        "platform": (TokenScope.PLATFORM, None, None),
    }
    for who, (scope, tenant, user) in tokens.items():
        issued = await service.credentials.create_token(
            operator, scope, tenant_name=tenant, username=user)
        principal = await service.credentials.authenticate_token(
            issued.secret, Channel.API, "192.0.2.7")
        world.contexts[who] = Context(principal, Channel.API, "192.0.2.7")
        world.token_ids[who] = issued.token.id
        world.secrets[who] = issued.secret
    world.contexts["anonymous"] = Context(Principal.anonymous(), Channel.WEB, "198.51.100.1")
    return world


@pytest.fixture
async def world(service: FingerplatService, operator: Context) -> World:
    return await make_world(service, operator)


def _memory(service: FingerplatService) -> MemoryStorage | None:
    """The in-memory storage of a service built on it (tests/unit/service), else None."""
    storage = service.core.storage
    return storage if isinstance(storage, MemoryStorage) else None


async def snapshot(service: FingerplatService) -> dict[str, Any]:
    """Every row of every table but the audit trail and the authentication throttle's
    counters (bookkeeping of who failed, not data): what "nothing changed" compares."""
    memory = _memory(service)
    if memory is not None:
        return memory.data()
    state: dict[str, Any] = {}
    async with service.engine.connect() as conn:
        for table in metadata.sorted_tables:
            if table in (audit_events, audit_chain_heads, auth_throttle):
                continue  # the trail, its chain heads and the throttle grow with refusals
            rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
            state[table.name] = [tuple(r) for r in rows]
    return state


async def latest_audit(service: FingerplatService, operator: Context, n: int = 1
                       ) -> list[AuditEvent]:
    return list(await service.audit.audit_log(operator, AuditQuery(limit=n), all_tenants=True))


async def audit_count(service: FingerplatService) -> int:
    memory = _memory(service)
    if memory is not None:
        return memory.audit_count()
    async with service.engine.connect() as conn:
        return len((await conn.execute(select(audit_events.c.id))).all())
