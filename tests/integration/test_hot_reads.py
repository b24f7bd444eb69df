"""A cache miss's user read on an asyncpg prepared statement reads what SQLAlchemy reads."""

from __future__ import annotations

import asyncpg
import pytest

from fingerplat.domain.model import Context
from fingerplat.repository.hot_reads import PgHotReads
from fingerplat.service import FingerplatService

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])


def _hot(database_url: str) -> PgHotReads:
    return PgHotReads(database_url, max_size=2, connect_timeout=5, command_timeout=5)


async def test_the_same_users_as_the_sqlalchemy_read(service: FingerplatService,
                                                     database_url: str,
                                                     operator: Context) -> None:
    await service.add_user(operator, None, "alice", full_name="Alice", office="Room 1")
    await service.set_status(operator, None, "alice", "at work")
    await service.set_plan(operator, None, "alice", "two\nlines")
    await service.add_user(operator, None, "hilda", full_name="Hilda")
    await service.edit_user(operator, None, "hilda", hidden=True)
    tenant = await service.resolve_tenant(None)
    expected = {name: await service.public_user(tenant, name)
                for name in ("alice", "hilda", "nobody")}
    hot = _hot(database_url)
    try:
        service.hot_reads = hot
        got = {name: await service.public_user(tenant, name) for name in expected}
        assert got == expected
        assert got["alice"] is not None and got["alice"].plan == "two\nlines"
        assert got["hilda"] is None and got["nobody"] is None
        assert (await hot.user(tenant.id, "hilda")) is not None  # hidden: the service decides
    finally:
        service.hot_reads = None
        await hot.close()


async def test_a_terminated_connection_is_read_again(service: FingerplatService,
                                                     database_url: str,
                                                     operator: Context) -> None:
    await service.add_user(operator, None, "bob", full_name="Bob")
    tenant = await service.resolve_tenant(None)
    hot = _hot(database_url)
    try:
        assert (await hot.user(tenant.id, "bob")) is not None
        dsn = database_url.replace("postgresql+asyncpg", "postgresql")
        admin = await asyncpg.connect(dsn)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = 'fingerplat-read' "
                "AND pid <> pg_backend_pid()")
        finally:
            await admin.close()
        assert killed >= 1
        user = await hot.user(tenant.id, "bob")
        assert user is not None and user.full_name == "Bob"
    finally:
        await hot.close()
