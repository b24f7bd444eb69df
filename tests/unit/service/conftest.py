"""The service on the in-memory storage (tests/support/memory_storage.py): no database.

Its rules (permissions, what a refusal audits, input checks, expiry, tenant
settings) are tested here once, fast; tests/integration/service keeps what
needs SQL (transactions, locks, constraints, drivers, the audit chain) and a
sample of every rule on SQLite and PostgreSQL, so each behaviour is also seen
on the real databases.
"""

from __future__ import annotations

import pytest

from fingerplat.domain.model import Context
from fingerplat.service import FingerplatService
from tests.integration.service.conftest import Clock, World, make_world
from tests.support.memory_storage import MemoryStorage


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def service(storage: MemoryStorage) -> FingerplatService:
    """Overrides the database-backed ``service`` of tests/conftest.py for this directory."""
    return FingerplatService(storage=storage)


@pytest.fixture
def clocked(storage: MemoryStorage, clock: Clock) -> FingerplatService:
    return FingerplatService(storage=storage, clock=clock)


@pytest.fixture
async def world(service: FingerplatService, operator: Context) -> World:
    return await make_world(service, operator)
