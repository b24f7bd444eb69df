"""Database faults and concurrency: clear errors, nothing half-written, no IntegrityError."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import func, select, text

from fingerplat.domain.errors import (
    Conflict,
    SchemaOutOfDate,
    Unavailable,
    UserNotFound,
)
from fingerplat.domain.model import AuditQuery, Channel, Tenant, TokenScope
from fingerplat.repository.engine import (
    READ_APPLICATION_NAME,
    create_engine,
    create_read_engine,
)
from fingerplat.repository.schema import audit_events, plans, status_history, users
from fingerplat.repository.uow import UnitOfWork
from fingerplat.service import FingerplatService
from tests.integration.service.conftest import snapshot
from tests.support.engines import dispose


def _calls(service: FingerplatService, operator):
    """One read and one write of each kind, all of which need the database."""
    tenant = Tenant(id=1, slug="default", name="default", list_users=True, forwarding=False,
                    is_default=True)
    return {
        "resolve_tenant": lambda: service.public.resolve_tenant(None),
        "public_user": lambda: service.public.public_user(tenant, "alice"),
        "directory": lambda: service.users.directory(tenant),
        "set_status": lambda: service.users.set_status(operator, None, "alice", "away"),
        "set_plan": lambda: service.users.set_plan(operator, None, "alice", "plan"),
        "add_user": lambda: service.users.add_user(operator, None, "alice"),
        "create_token": lambda: service.credentials.create_token(operator, TokenScope.TENANT),
        "authenticate_token": lambda: service.credentials.authenticate_token(
            "fp_1_secret", Channel.SETTER),
        "garbage_token": lambda: service.credentials.authenticate_token("garbage", Channel.SETTER),
        "authenticate_admin": lambda: service.credentials.authenticate_admin(
            "ops", "password", Channel.WEB),
        "audit_log": lambda: service.audit.audit_log(operator, AuditQuery()),
        "check_health": lambda: service.check_health(),
        "check_schema": lambda: service.check_schema(),
    }


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+asyncpg://postgres@127.0.0.1:1/x",  # nothing listens on port 1
        "postgresql+asyncpg://postgres@127.0.0.1:5432/fp_no_such_database",
        "postgresql+asyncpg://no_such_role@127.0.0.1:5432/postgres",
        "sqlite+aiosqlite:///{file}/below-a-file/fingerplat.db",  # cannot be created
    ],
    ids=["pg-refused", "pg-unknown-db", "pg-unknown-role", "sqlite-unwritable"],
)
async def test_unreachable_database_is_unavailable_for_every_call(tmp_path: Path, operator, url):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    engine = create_engine(url.format(file=blocker))
    read_engine = create_read_engine(url.format(file=blocker))  # as serve wires it
    service = FingerplatService(engine, read_engine=read_engine)
    try:
        for name, call in _calls(service, operator).items():
            with pytest.raises(Unavailable) as info:
                await asyncio.wait_for(call(), timeout=20)
            assert "database" in str(info.value), name
            assert "Traceback" not in str(info.value)
    finally:
        if read_engine is not None:
            await dispose(read_engine)
        await dispose(engine)


async def test_unmigrated_database_says_to_upgrade(db_factory, backend, operator):
    url = await db_factory.empty(backend)
    engine = create_engine(url)
    read_engine = create_read_engine(url)
    service = FingerplatService(engine, read_engine=read_engine)
    try:
        for name, call in _calls(service, operator).items():
            if name == "check_health":
                await call()  # the server answers; only the schema is missing
                continue
            with pytest.raises(SchemaOutOfDate, match="fingerplat db upgrade"):
                await call()
    finally:
        if read_engine is not None:
            await dispose(read_engine)
        await dispose(engine)


async def test_read_connections_terminated_by_the_server_are_replaced_unseen(
    db_factory, operator
) -> None:
    """An administrator (or a PostgreSQL restart) kills the read pool's connections.

    The read pool has no pre-ping; the next reads notice the dead connections
    themselves and read again on fresh ones, so nobody sees an error.
    """
    url = await db_factory.make("postgresql")
    engine = create_engine(url)
    read_engine = create_read_engine(url)
    assert read_engine is not None
    service = FingerplatService(engine, read_engine=read_engine)
    try:
        await service.users.add_user(operator, None, "alice")
        await service.users.set_status(operator, None, "alice", "asleep")
        tenant = await service.public.resolve_tenant(None)
        # Several pooled read connections, all idle in the pool afterwards.
        users = await asyncio.gather(*(service.public.public_user(
            tenant, "alice") for _ in range(6)))
        assert {u.status for u in users if u is not None} == {"asleep"}
        async def read_connections(terminate: bool) -> int:
            # A transaction of its own each time: pg_stat_activity is a snapshot per transaction.
            async with engine.connect() as conn:
                found = (await conn.execute(text(
                    "SELECT count(CASE WHEN :terminate THEN pg_terminate_backend(pid) END)"
                    " + count(CASE WHEN NOT :terminate THEN 1 END) FROM pg_stat_activity"
                    " WHERE application_name = :name AND datname = current_database()"
                ), {"name": READ_APPLICATION_NAME, "terminate": terminate})).scalar_one()
                return int(found)

        assert await read_connections(terminate=True) >= 2
        for _ in range(100):  # termination is asynchronous
            if await read_connections(terminate=False) == 0:
                break
            await asyncio.sleep(0.05)
        assert await read_connections(terminate=False) == 0
        for _ in range(8):
            user = await service.public.public_user(tenant, "alice")
            assert user is not None and user.status == "asleep"
            history = await service.public.public_history(tenant, "alice")
            assert [change.text for change in history] == ["asleep"]
            assert (await service.public.resolve_tenant(None)).slug == "default"
    finally:
        await dispose(read_engine)
        await dispose(engine)


async def test_failing_write_leaves_nothing_behind(service, operator):
    await service.tenants.create_tenant(operator, "acme", domains=["zeta.example"])
    before = await snapshot(service)
    [last] = await service.audit.audit_log(operator, AuditQuery(limit=1), all_tenants=True)
    # the tenant row and its first domain are written before the second domain fails
    with pytest.raises(Conflict, match=r"zeta\.example"):
        await service.tenants.create_tenant(operator, "initech",
                                    domains=["initech.example", "zeta.example"])
    assert await snapshot(service) == before
    assert await service.audit.audit_log(operator, AuditQuery(limit=1), all_tenants=True) == [last]
    assert await service.public.tenant_for_host("initech.example") is None
    # and the slug is still free
    assert (await service.tenants.create_tenant(operator, "initech")).slug == "initech"


async def test_concurrent_removal_and_status_change(service, operator):
    """Racing a status change against removing the user: one clean outcome, never a crash."""
    outcomes: set[str] = set()
    for round_no in range(8):
        name = f"racer{round_no}"
        await service.users.add_user(operator, None, name)
        results = await asyncio.wait_for(asyncio.gather(
            service.users.set_status(operator, None, name, "still here"),
            service.users.remove_user(operator, None, name),
            service.users.set_plan(operator, None, name, "plan"),
            return_exceptions=True,
        ), timeout=30)
        for result in results:
            if isinstance(result, BaseException):
                assert isinstance(result, UserNotFound), repr(result)
                outcomes.add("not found")
            else:
                outcomes.add("ok")
        assert results[1] is None  # the removal always succeeds
    async with service.engine.connect() as conn:
        for table in (users, status_history, plans):
            count = (await conn.execute(select(func.count()).select_from(table))).scalar_one()
            assert count == 0, f"{table.name} has rows of removed users"
        removals = (await conn.execute(
            select(func.count()).select_from(audit_events)
            .where(audit_events.c.action == "user.remove")
        )).scalar_one()
    assert removals == 8
    assert outcomes <= {"ok", "not found"}


async def test_concurrent_status_changes_are_all_kept(service, operator):
    await service.users.add_user(operator, None, "alice")
    texts = [f"status {i}" for i in range(12)]
    await asyncio.wait_for(asyncio.gather(
        *(service.users.set_status(operator, None, "alice", t) for t in texts)
    ), timeout=30)
    history = await service.users.history(operator, None, "alice", limit=100)
    assert sorted(h.text for h in history) == sorted(texts)
    user = await service.users.get_user(operator, None, "alice")
    assert user.status == history[0].text  # the current status is the latest one
    events = await service.audit.audit_log(operator, AuditQuery(action="status.set", limit=100))
    assert len(events) == 12
    assert [e.after["status"] for e in events] == [h.text for h in history]


async def test_lock_order_inversion_is_never_a_raw_database_error(service, operator, backend):
    """Two units of work updating the same two users in opposite order.

    SQLite serialises writers (BEGIN IMMEDIATE), so both succeed; PostgreSQL
    detects the deadlock and aborts one, which must reach callers as a
    retryable Unavailable, never as a driver exception.
    """
    first = await service.users.add_user(operator, None, "first")
    second = await service.users.add_user(operator, None, "second")
    both_hold_one = asyncio.Barrier(2) if backend == "postgresql" else None

    async def writer(ids: tuple[int, int], office: str) -> None:
        async with UnitOfWork(service.engine) as repo:
            await repo.update_user(ids[0], office=office)
            if both_hold_one is not None:
                await both_hold_one.wait()
            await repo.update_user(ids[1], office=office)

    results = await asyncio.wait_for(asyncio.gather(
        writer((first.id, second.id), "a"), writer((second.id, first.id), "b"),
        return_exceptions=True,
    ), timeout=30)
    errors = [r for r in results if isinstance(r, BaseException)]
    if backend == "sqlite":
        assert errors == []
    else:
        assert len(errors) == 1, results
        assert isinstance(errors[0], Unavailable) and "try again" in str(errors[0])
    offices = {(await service.users.get_user(
        operator, None, n)).office for n in ("first", "second")}
    assert len(offices) == 1  # one writer's change, whole; never a mix
