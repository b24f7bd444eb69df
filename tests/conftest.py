"""Shared fixtures: every database-touching test runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import getpass
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from fingerplat.bootstrap import open_service
from fingerplat.domain.model import Channel, Context, Principal
from fingerplat.service import FingerplatService
from tests.support.databases import DatabaseFactory, postgres_description
from tests.support.other_process import other_process  # noqa: F401 - a fixture for every test
from tests.support.runtime import runtime_nodes  # noqa: F401 - a fixture for every test

BACKENDS = ["sqlite", "postgresql"]


def pytest_report_header() -> str:
    """Say which PostgreSQL this run uses (found or started), before any test runs."""
    return f"PostgreSQL for the tests: {postgres_description()}"


@pytest.fixture(scope="session")
def db_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    import asyncio

    factory = DatabaseFactory(tmp_path_factory.mktemp("databases"))
    yield factory
    asyncio.run(factory.drop_all())


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
async def database_url(db_factory: DatabaseFactory, backend: str) -> str:
    """A fresh, migrated database of the parametrised backend for this one test."""
    return await db_factory.make(backend)


@pytest.fixture
async def service(database_url: str) -> AsyncIterator[FingerplatService]:
    """Wired by the bootstrap as ``serve`` wires it: the public reads use a pool of their own.

    ``prepare=False``: the factory made the database migrated already.
    """
    async with open_service(database_url, prepare=False, read_pool=True) as wired:
        yield wired.service


@pytest.fixture
def operator() -> Context:
    """The CLI operator: a platform admin audited as ``cli:<os user>``."""
    return Context(Principal.operator(getpass.getuser()), Channel.CLI)


@pytest.fixture
def repo_root() -> Path:
    return Path(__file__).resolve().parents[1]
