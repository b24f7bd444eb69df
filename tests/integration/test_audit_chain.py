"""The hash chain of the audit trail (SPEC 11, issue 12 item 12), on both databases.

Every event carries ``hash`` = SHA-256 over its fields and ``prev_hash`` (the
previous event of its tenant's chain). These tests check that every way of
writing audit rows (use cases, refusals, imports, concurrent writers on
several engines) keeps the chains intact, that tampering done directly in the
database (as the schema owner, triggers out of the way) is found and named,
and that SQLite refuses REPLACE on the table.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from fingerplat.adapters.sources.users_file import parse_users_file
from fingerplat.domain import audit_chain
from fingerplat.domain.errors import PermissionDenied
from fingerplat.domain.model import AuditQuery, Channel, Context, TokenScope
from fingerplat.repository import migrations
from fingerplat.repository.engine import create_engine
from fingerplat.service import FingerplatService


async def _total(service: FingerplatService) -> int:
    async with service.engine.connect() as conn:
        return int((await conn.execute(text("SELECT count(*) FROM audit_events"))).scalar_one())


async def _verified(service: FingerplatService, operator: Context,
                    tenant: str | None = None) -> int:
    results = await service.audit.verify_audit(operator, tenant)
    assert all(r.intact for r in results), [r.report for r in results]
    return sum(r.report.events for r in results)


async def test_every_writer_keeps_the_chains_intact(
    service: FingerplatService, operator: Context
) -> None:
    await service.tenants.create_tenant(operator, "acme")
    await service.users.add_user(operator, "acme", "alice")
    await service.users.set_status(operator, "acme", "alice", "here")
    await service.credentials.add_admin(operator, "ops", "long enough password")
    issued = await service.credentials.create_token(operator, TokenScope.USER, tenant_name="acme",
                                        username="alice")
    alice = Context(await service.credentials.authenticate_token(
        issued.secret, Channel.API), Channel.API)
    with pytest.raises(PermissionDenied):  # a refusal is chained too
        await service.users.add_user(alice, "acme", "mallory")
    data = "".join(f"user{i}: status {i}\n" for i in range(1200)).encode()
    await service.imports.import_records(operator, "acme", parse_users_file(data), batch_size=500)
    await service.users.set_status(operator, "acme", "user7", "after the import")
    await service.tenants.remove_tenant(operator, "acme")
    await service.tenants.create_tenant(operator, "acme")  # a new chain for the new tenant
    total = await _total(service)
    assert await _verified(service, operator) == total
    acme = await _verified(service, operator, "acme")
    assert acme == 1  # the new acme: its creation only
    events = await service.audit.audit_log(operator, AuditQuery(limit=5), all_tenants=True)
    assert all(e.hash and len(e.hash) == 64 for e in events)


async def test_parallel_writers_on_several_engines_keep_one_chain_per_tenant(
    service: FingerplatService, operator: Context, database_url: str
) -> None:
    """Two "nodes" (engines with pools of their own), many writers each, two tenants
    and platform events: every chain still verifies, and no event is missing."""
    await service.tenants.create_tenant(operator, "acme")
    for name in ("a", "b", "c", "d"):
        await service.users.add_user(operator, "acme", name)
        await service.users.add_user(operator, None, name)
    other = FingerplatService(create_engine(database_url))
    try:
        async def writer(svc: FingerplatService, tenant: str | None, user: str) -> None:
            for i in range(15):
                await svc.users.set_status(operator, tenant, user, f"{user} {i}")

        async def admins(svc: FingerplatService, prefix: str) -> None:
            for i in range(5):
                await svc.credentials.add_admin(operator, f"{prefix}{i}", "long enough password")

        before = await _total(service)
        jobs = [writer(svc, tenant, user)
                for svc in (service, other) for tenant in ("acme", None)
                for user in ("a", "b", "c", "d")]
        jobs += [admins(service, "x"), admins(other, "y")]
        await asyncio.gather(*jobs)
        assert await _total(service) == before + 2 * 2 * 4 * 15 + 10
        assert await _verified(service, operator) == await _total(service)
    finally:
        await other.engine.dispose()


async def _raw(database_url: str, *statements: str) -> None:
    """Run SQL as the schema owner, the append-only triggers out of the way."""
    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                for trigger in ("no_update", "no_delete", "no_replace"):
                    await conn.execute(text(f"DROP TRIGGER IF EXISTS audit_events_{trigger}"))
            else:
                await conn.execute(text("ALTER TABLE audit_events DISABLE TRIGGER USER"))
            for statement in statements:
                await conn.execute(text(statement))
            if conn.dialect.name == "postgresql":
                await conn.execute(text("ALTER TABLE audit_events ENABLE TRIGGER USER"))
    finally:
        await engine.dispose()


async def _acme_ids(service: FingerplatService, operator: Context) -> list[int]:
    await service.tenants.create_tenant(operator, "acme")
    for name in ("alice", "bob", "carol"):
        await service.users.add_user(operator, "acme", name)
    events = await service.audit.audit_log(operator, AuditQuery(tenant="acme"))
    ids = sorted(e.id for e in events)
    assert len(ids) == 4 and await _verified(service, operator) == await _total(service)
    return ids


FORGED = ("INSERT INTO audit_events (id, at, tenant, tenant_id, actor, channel, action, target,"
          " outcome, detail, prev_hash, hash) SELECT {id}, at, tenant, tenant_id, 'cli:evil',"
          " channel, 'user.create', 'eve@acme', outcome, detail, {prev}, {hash}"
          " FROM audit_events WHERE id = {like}")


@pytest.mark.parametrize("tamper", ["alter", "alter-and-rehash", "delete", "forge-naive",
                                    "forge-linked", "forge-after-last", "remove-last"])
async def test_tampering_is_found_and_named(
    service: FingerplatService, operator: Context, database_url: str, tamper: str
) -> None:
    ids = await _acme_ids(service, operator)
    _first, second, third, last = ids
    expected: tuple[int, str]
    if tamper == "alter":
        await _raw(database_url,
                   f"UPDATE audit_events SET actor = 'cli:someone-else' WHERE id = {second}")
        expected = (second, "altered")
    elif tamper == "alter-and-rehash":
        # An attacker who knows the algorithm rewrites the row and its hash: the
        # next event's link gives it away.
        await _raw(database_url, f"UPDATE audit_events SET actor = 'x' WHERE id = {second}")
        await _rehash(database_url, second)
        expected = (third, "removed")
    elif tamper == "delete":
        await _raw(database_url, f"DELETE FROM audit_events WHERE id = {second}")
        expected = (third, "removed")
    elif tamper in ("forge-naive", "forge-linked"):
        # Make room after the second event (ids are not hashed: renumbering
        # alone changes nothing the chain vouches for), then slip a forged event in.
        await _raw(database_url,
                   f"UPDATE audit_events SET id = id + 100 WHERE id > {second} AND id <= {last}",
                   FORGED.format(id=second + 1, prev="prev_hash", hash="hash", like=second))
        if tamper == "forge-linked":  # linked and hashed as the real code would
            await _relink(database_url, second + 1, second)
        expected = (second + 1, "inserted")
    elif tamper == "forge-after-last":
        # Linked and hashed correctly after the last event, but the chain's head
        # record still names the real last one.
        await _raw(database_url, FORGED.format(id=last + 1000, prev="prev_hash", hash="hash",
                                               like=last))
        await _relink(database_url, last + 1000, last)
        expected = (last + 1000, "inserted")
    else:
        await _raw(database_url, f"DELETE FROM audit_events WHERE id = {last}")
        expected = (last, "removed")
    results = await service.audit.verify_audit(operator, "acme")
    [result] = results
    assert result.report.problem is not None, result
    assert (result.report.problem.event_id, result.report.problem.kind) == expected, result
    assert str(expected[0]) in result.report.problem.message
    everything = await service.audit.verify_audit(operator)
    assert [r.label for r in everything if not r.intact] == ["tenant acme"]


async def _row(database_url: str, event_id: int) -> dict:
    engine = create_engine(database_url)
    try:
        from sqlalchemy import select

        from fingerplat.repository.schema import audit_events
        async with engine.connect() as conn:
            row = (await conn.execute(select(audit_events).where(
                audit_events.c.id == event_id))).mappings().one()
            return dict(row)
    finally:
        await engine.dispose()


async def _rehash(database_url: str, event_id: int) -> None:
    row = await _row(database_url, event_id)
    digest = audit_chain.event_hash(row, row["prev_hash"])
    await _raw(database_url, f"UPDATE audit_events SET hash = '{digest}' WHERE id = {event_id}")


async def _relink(database_url: str, event_id: int, after: int) -> None:
    prev = (await _row(database_url, after))["hash"]
    row = {**await _row(database_url, event_id), "prev_hash": prev}
    digest = audit_chain.event_hash(row, prev)
    await _raw(database_url, f"UPDATE audit_events SET prev_hash = '{prev}', hash = '{digest}' "
                             f"WHERE id = {event_id}")


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
@pytest.mark.parametrize("verb", ["REPLACE INTO", "INSERT OR REPLACE INTO"])
async def test_sqlite_refuses_replace_on_the_audit_table(
    service: FingerplatService, operator: Context, database_url: str, verb: str
) -> None:
    await service.users.add_user(operator, None, "alice")
    [event] = await service.audit.audit_log(operator, AuditQuery(limit=1))
    engine = create_engine(database_url)
    try:
        with pytest.raises(DBAPIError, match="append-only"):
            async with engine.begin() as conn:
                await conn.execute(text(
                    f"{verb} audit_events (id, at, tenant, actor, channel, action, target, "
                    "outcome, detail) VALUES (:id, '2020-01-01 00:00:00.000000', 'default', "
                    "'cli:evil', 'cli', 'user.create', 'x', 'ok', '')"), {"id": event.id})
    finally:
        await engine.dispose()
    [again] = await service.audit.audit_log(operator, AuditQuery(limit=1))
    assert again == event
    assert await _verified(service, operator) == await _total(service)


async def test_upgrade_backfills_tenant_ids_and_the_chain(db_factory, backend: str,
                                                          operator: Context) -> None:
    """Rows written before 0002 get their tenant's id (not a later tenant's that took
    the slug) and a chain that verifies."""
    url = await db_factory.empty(backend)
    engine = create_engine(url)
    try:
        await migrations.upgrade(engine, "0001")
        t0 = datetime(2026, 1, 1, tzinfo=UTC)
        later = datetime(2026, 6, 1, tzinfo=UTC)
        async with engine.begin() as conn:
            await conn.execute(text(
                "INSERT INTO tenants (slug, name, list_users, forwarding, is_default, created_at)"
                " VALUES ('beta', 'Beta', true, false, false, :at)"), {"at": later})
            rows = [("beta", t0, "tenant.create"), ("beta", t0, "user.create"),  # old beta
                    ("default", t0, "user.create"), (None, t0, "admin.create"),
                    ("beta", later, "tenant.create"), ("beta", later, "user.create")]
            for tenant, at, action in rows:
                await conn.execute(text(
                    "INSERT INTO audit_events (at, tenant, actor, channel, action, target, "
                    "outcome, detail, before, after) VALUES (:at, :tenant, 'cli:root', 'cli', "
                    ":action, 'x', 'ok', '', NULL, :after)"),
                    {"at": at, "tenant": tenant, "action": action,
                     "after": '{"b": 1, "a": [true, "\\u00e9"]}'})
        await migrations.upgrade(engine)
    finally:
        await engine.dispose()
    service = FingerplatService(create_engine(url))
    try:
        events = await service.audit.audit_log(operator, AuditQuery(limit=100), all_tenants=True)
        by_id = sorted(events, key=lambda e: e.id)
        beta_id = by_id[4].tenant_id
        assert beta_id is not None and by_id[5].tenant_id == beta_id
        assert by_id[0].tenant_id is None and by_id[1].tenant_id is None  # the removed beta
        assert by_id[2].tenant_id is not None and by_id[3].tenant_id is None
        mine = await service.audit.audit_log(operator, AuditQuery(tenant="beta"))
        assert [e.id for e in mine] == [by_id[5].id, by_id[4].id]
        assert await _verified(service, operator) == 6
        await service.users.add_user(operator, "beta", "carol")  # appends go on from the heads
        assert await _verified(service, operator) == 7
    finally:
        await service.engine.dispose()
