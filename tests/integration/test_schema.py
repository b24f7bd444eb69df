"""The migrations build the schema the code expects, on both databases."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from fingerplat.domain.model import AuditQuery
from fingerplat.repository import migrations
from fingerplat.repository.engine import create_engine
from fingerplat.repository.schema import metadata


async def test_fresh_database_has_default_tenant(service, operator):
    tenant = await service.public.resolve_tenant(None)
    assert tenant.slug == "default"
    assert tenant.is_default and tenant.list_users and not tenant.forwarding


async def test_migrations_match_schema_module(database_url):
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(
                lambda c: compare_metadata(MigrationContext.configure(c), metadata)
            )
    finally:
        await engine.dispose()
    assert diff == []


async def test_downgrade_then_upgrade_round_trip(db_factory, backend):
    url = await db_factory.empty(backend)
    engine = create_engine(url)
    try:
        await migrations.upgrade(engine)
        assert await migrations.current_revision(engine) == migrations.head_revision()
        await migrations.downgrade(engine, "base")
        assert await migrations.current_revision(engine) is None
        await migrations.upgrade(engine)
        assert await migrations.is_current(engine)
    finally:
        await engine.dispose()


async def test_audit_table_refuses_update_and_delete(service, operator, backend):
    await service.users.add_user(operator, None, "alice")
    events = await service.audit.audit_log(operator, AuditQuery())
    assert events, "adding a user must write an audit event"
    for statement in (
        "UPDATE audit_events SET actor = 'someone else'",
        "DELETE FROM audit_events",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            async with service.engine.begin() as conn:
                await conn.execute(text(statement))
    after = await service.audit.audit_log(operator, AuditQuery())
    assert [(e.id, e.actor) for e in after] == [(e.id, e.actor) for e in events]
    if backend == "postgresql":
        with pytest.raises(DBAPIError, match="append-only"):
            async with service.engine.begin() as conn:
                await conn.execute(text("TRUNCATE audit_events"))


def test_schema_revision_constant_is_alembics_head():
    # The CLI checks the schema without importing Alembic; a new migration file
    # must move the constant, or every command would think the database current.
    assert migrations.head_revision() == migrations.alembic_head_revision()
