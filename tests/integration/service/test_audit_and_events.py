"""Reading the audit trail with filters, and change events published after commits."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fingerplat.domain.errors import PermissionDenied
from fingerplat.domain.model import AuditQuery, ChangeEvent
from fingerplat.service import FingerplatService
from tests.integration.service.conftest import Clock, make_world


async def test_audit_filters(clocked: FingerplatService, clock: Clock, operator):
    svc = clocked
    start = clock.now
    await svc.tenants.create_tenant(operator, "acme")
    # one change a minute: minute 1 adds alice, 2 bob, then statuses at 3, 4, 5
    for user, status in [("alice", None), ("bob", None), ("alice", "one"), ("bob", "two"),
                         ("alice", "three")]:
        clock.advance(minutes=1)
        if status is None:
            await svc.users.add_user(operator, "acme", user)
        else:
            await svc.users.set_status(operator, "acme", user, status)

    async def actions(**query) -> list[tuple[str, str]]:
        events = await svc.audit.audit_log(operator, AuditQuery(tenant="acme", **query))
        return [(e.action, e.target) for e in events]

    assert await actions() == [
        ("status.set", "alice@acme"), ("status.set", "bob@acme"), ("status.set", "alice@acme"),
        ("user.create", "bob@acme"), ("user.create", "alice@acme"), ("tenant.create", "acme"),
    ]
    assert await actions(username="alice") == [
        ("status.set", "alice@acme"), ("status.set", "alice@acme"), ("user.create", "alice@acme")]
    assert await actions(action="user.create") == [
        ("user.create", "bob@acme"), ("user.create", "alice@acme")]
    assert await actions(username="bob", action="status.set") == [("status.set", "bob@acme")]
    # since is inclusive, until exclusive
    assert await actions(since=start + timedelta(minutes=4)) == [
        ("status.set", "alice@acme"), ("status.set", "bob@acme")]
    assert await actions(until=start + timedelta(minutes=2)) == [
        ("user.create", "alice@acme"), ("tenant.create", "acme")]
    assert await actions(since=start + timedelta(minutes=2),
                         until=start + timedelta(minutes=3)) == [("user.create", "bob@acme")]
    assert await actions(limit=2) == [("status.set", "alice@acme"), ("status.set", "bob@acme")]
    # paging with before_id walks the whole trail once, newest first
    page = await svc.audit.audit_log(operator, AuditQuery(tenant="acme", limit=4))
    rest = await svc.audit.audit_log(operator, AuditQuery(tenant="acme", limit=4,
                                                    before_id=page[-1].id))
    assert [e.id for e in [*page, *rest]] == sorted((e.id for e in [*page, *rest]), reverse=True)
    assert len(page) + len(rest) == 6
    assert await actions(username="nobody") == []
    # the default tenant's trail does not show acme's events
    default = await svc.audit.audit_log(operator, AuditQuery())
    assert all(e.tenant == "default" for e in default)
    everything = await svc.audit.audit_log(operator, AuditQuery(limit=1000), all_tenants=True)
    assert len(everything) == 6


async def test_change_events_follow_commits_and_not_refusals(service, operator):
    world = await make_world(service, operator)
    seen: list[ChangeEvent] = []
    unsubscribe = service.events.subscribe(seen.append)

    async def failing(event: ChangeEvent) -> None:
        raise RuntimeError("a broken subscriber must not break the writer")

    service.events.subscribe(failing)
    await service.users.set_status(operator, "acme", "alice", "away")
    await service.users.set_plan(operator, "acme", "alice", "plan")
    await service.users.edit_user(operator, "acme", "ghost", hidden=False)
    await service.credentials.revoke_token(operator, world.token_ids["carol"])
    await service.tenants.update_tenant(operator, "acme", list_users=False)
    with pytest.raises(PermissionDenied):
        await service.users.set_status(world.ctx("alice"), "acme", "bob", "no")
    await service.users.edit_user(operator, "acme", "bob")  # no change, no event
    await service.users.remove_user(operator, "acme", "bob")
    acme = await service.public.resolve_tenant("acme")
    assert [(e.kind, e.tenant_slug, e.username) for e in seen] == [
        ("status", "acme", "alice"),
        ("plan", "acme", "alice"),
        ("user", "acme", "ghost"),
        ("token", "globex", None),
        ("tenant", "acme", None),
        ("user", "acme", "bob"),
    ]
    assert seen[0].status == "away" and seen[0].tenant_id == acme.id
    assert seen[0].data == {"hidden": False}
    assert seen[-1].data == {"removed": True}
    unsubscribe()
    await service.users.clear_status(operator, "acme", "alice")
    assert len(seen) == 6
