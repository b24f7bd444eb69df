"""A cache miss's user read on an asyncpg prepared statement reads what SQLAlchemy reads."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from fingerplat.domain.errors import Unavailable
from fingerplat.domain.imports import ImportRecord
from fingerplat.domain.model import Context
from fingerplat.repository.hot_reads import PgHotReads
from fingerplat.service import FingerplatService

pytestmark = pytest.mark.parametrize("backend", ["postgresql"])


def _hot(database_url: str) -> PgHotReads:
    return PgHotReads(database_url, max_size=2, connect_timeout=5, command_timeout=5)


async def test_the_same_users_as_the_sqlalchemy_read(service: FingerplatService,
                                                     database_url: str,
                                                     operator: Context) -> None:
    await service.users.add_user(operator, None, "alice", full_name="Alice", office="Room 1")
    await service.users.set_status(operator, None, "alice", "at work")
    await service.users.set_plan(operator, None, "alice", "two\nlines")
    await service.users.add_user(operator, None, "hilda", full_name="Hilda")
    await service.users.edit_user(operator, None, "hilda", hidden=True)
    tenant = await service.public.resolve_tenant(None)
    expected = {name: await service.public.public_user(tenant, name)
                for name in ("alice", "hilda", "nobody")}
    hot = _hot(database_url)
    try:
        service.hot_reads = hot
        got = {name: await service.public.public_user(tenant, name) for name in expected}
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
    await service.users.add_user(operator, None, "bob", full_name="Bob")
    tenant = await service.public.resolve_tenant(None)
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


async def test_concurrent_misses_share_a_read_and_each_gets_its_own_answer(
        service: FingerplatService, database_url: str, operator: Context) -> None:
    # A burst of misses in one turn of the loop is read together (username =
    # ANY(...)); every miss must still get exactly its own user, or None.
    names = [f"u{i:03d}" for i in range(300)]  # more than one batch (BATCH_LIMIT)
    await service.imports.import_records(operator, None, [
        ImportRecord(line=i + 1, username=n, full_name=n.upper())
        for i, n in enumerate(names[::2])])
    other = await service.tenants.create_tenant(operator, "other", domains=["other.example"])
    await service.users.add_user(operator, "other", "u001", full_name="Other's u001")
    tenant = await service.public.resolve_tenant(None)
    hot = _hot(database_url)
    try:
        asked = [(tenant.id, n) for n in names] + [(other.id, "u001"), (other.id, "u000")]
        asked += asked[:10]  # the same name twice in one burst
        got = await asyncio.gather(*(hot.user(t, n) for t, n in asked))
        for (tenant_id, name), user in zip(asked, got, strict=True):
            if tenant_id == other.id:
                expected = "Other's u001" if name == "u001" else None
            else:
                expected = name.upper() if int(name[1:]) % 2 == 0 else None
            assert (user.full_name if user else None) == expected, (tenant_id, name)
            assert user is None or (user.username, user.tenant_id) == (name, tenant_id)
    finally:
        await hot.close()


async def test_a_miss_whose_client_left_does_not_harm_the_others(
        service: FingerplatService, database_url: str, operator: Context) -> None:
    await service.users.add_user(operator, None, "carol", full_name="Carol")
    await service.users.add_user(operator, None, "dave", full_name="Dave")
    tenant = await service.public.resolve_tenant(None)
    hot = _hot(database_url)
    try:
        left = asyncio.ensure_future(hot.user(tenant.id, "carol"))
        stays = asyncio.ensure_future(hot.user(tenant.id, "carol"))
        dave = asyncio.ensure_future(hot.user(tenant.id, "dave"))
        await asyncio.sleep(0)  # all three are waiting for the same read
        left.cancel()
        carol, dave_user = await stays, await dave
        assert left.cancelled()
        assert carol is not None and carol.full_name == "Carol"
        assert dave_user is not None and dave_user.full_name == "Dave"
    finally:
        await hot.close()


async def test_an_unreachable_database_fails_every_waiting_miss_with_a_domain_error(
        backend: str) -> None:  # PostgreSQL's read path (the module's parametrisation)
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    hot = PgHotReads("postgresql+asyncpg://nobody@127.0.0.1:9/none", max_size=1,
                     connect_timeout=2, command_timeout=2)
    try:
        results = await asyncio.gather(*(hot.user(1, n) for n in ("a", "b", "c")),
                                       return_exceptions=True)
        assert [type(r) for r in results] == [Unavailable] * 3
        assert all(str(r) == "database unreachable" for r in results)
    finally:
        await hot.close()
