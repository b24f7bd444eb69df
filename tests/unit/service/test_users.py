"""User use cases: accounts, status, plan, history, and the public directory reads."""

from __future__ import annotations

import pytest

from fingerplat.domain.errors import (
    InvalidInput,
    PermissionDenied,
    UserNotFound,
)
from fingerplat.domain.model import AuditQuery
from tests.integration.service.conftest import World, latest_audit, snapshot


async def test_changes_are_audited_with_actor_channel_before_and_after(world: World):
    svc, op = world.service, world.operator
    await svc.users.set_status(op, "acme", "alice", "away")
    await svc.users.set_status(world.ctx("alice"), "acme", "alice", "back at 3")
    await svc.users.edit_user(op, "acme", "alice", office="Room 12", hidden=True)
    await svc.users.set_plan(op, "acme", "alice", "Tea at four.")
    await svc.users.clear_status(op, "acme", "alice")
    events = await latest_audit(svc, op, 5)
    assert [e.action for e in events] == [
        "status.clear", "plan.set", "user.update", "status.set", "status.set"]
    clear, plan, edit, by_token, by_cli = events
    assert (by_cli.actor, by_cli.channel, by_cli.tenant, by_cli.target) == (
        op.principal.name, "cli", "acme", "alice@acme")
    assert by_cli.before == {"status": None} and by_cli.after == {"status": "away"}
    assert by_token.actor == world.ctx("alice").principal.name
    assert (by_token.channel, by_token.remote_addr) == ("api", "192.0.2.7")
    assert by_token.before == {"status": "away"} and by_token.after == {"status": "back at 3"}
    assert edit.before["office"] == "" and edit.after["office"] == "Room 12"
    assert edit.before["hidden"] is False and edit.after["hidden"] is True
    assert plan.before == {"bytes": 0} and plan.after == {"bytes": len(b"Tea at four.")}
    assert clear.before == {"status": "back at 3"} and clear.after == {"status": None}
    assert all(e.outcome == "ok" for e in events)


async def test_edit_without_change_writes_no_audit_event(world: World):
    svc, op = world.service, world.operator
    [before] = await latest_audit(svc, op)
    await svc.users.edit_user(op, "acme", "alice", full_name="Alice Liddell")
    [after] = await latest_audit(svc, op)
    assert after.id == before.id


async def test_invalid_input_changes_nothing(world: World):
    svc, op = world.service, world.operator
    before = await snapshot(svc)
    bad_calls = [
        svc.users.set_status(op, "acme", "alice", "x" * 281),
        svc.users.set_status(op, "acme", "alice", "two\nlines"),
        svc.users.set_status(op, "acme", "alice", "\x1b[2J"),
        svc.users.set_plan(op, "acme", "alice", "p" * (16 * 1024 + 1)),
        svc.users.add_user(op, "acme", "9lives"),
        svc.users.add_user(op, "acme", "eve", full_name="x\ny"),
        svc.users.edit_user(op, "acme", "alice", phone="\x00"),
    ]
    for call in bad_calls:
        with pytest.raises(InvalidInput):
            await call
    assert await snapshot(svc) == before


async def test_unknown_user_and_tenant(world: World):
    svc, op = world.service, world.operator
    with pytest.raises(UserNotFound, match="no such user 'nobody' in tenant 'acme'"):
        await svc.users.set_status(op, "acme", "nobody", "x")
    with pytest.raises(UserNotFound):
        await svc.users.remove_user(op, "acme", "nobody")
    with pytest.raises(UserNotFound):
        await svc.users.edit_user(op, "acme", "nobody", office="x")
    with pytest.raises(Exception, match="no such tenant"):
        await svc.users.add_user(op, "initech", "peter")


# -- hidden users ------------------------------------------------------------------


async def test_hidden_user_is_visible_to_admins(world: World):
    svc = world.service
    acme = await svc.public.resolve_tenant("acme")
    await svc.users.set_status(world.operator, "acme", "ghost", "boo")
    for who in ("acme_admin", "platform"):
        ctx = world.ctx(who)
        assert (await svc.users.get_user(ctx, "acme", "ghost")).hidden
        assert [h.text for h in await svc.users.history(ctx, "acme", "ghost")] == ["boo"]
        page = await svc.users.directory(acme, ctx=ctx)
        assert [u.username for u in page.users] == ["alice", "bob", "ghost"]
        assert page.total == 3


# -- the directory -----------------------------------------------------------------


async def test_directory_refuses_garbage_cursors_and_limits(service):
    tenant = await service.public.resolve_tenant()
    for cursor in ["!!!", "bm90IGEgdXNlcg", "////", "\x00", "é"]:
        with pytest.raises(InvalidInput, match="invalid cursor"):
            await service.users.directory(tenant, cursor=cursor)
    for limit in [0, -1, 1001]:
        with pytest.raises(InvalidInput, match="limit must be between 1 and 1000"):
            await service.users.directory(tenant, limit=limit)
    assert (await service.users.directory(tenant, limit=1000)).users == []


async def test_list_users_off_hides_the_directory_from_the_public(world: World):
    svc = world.service
    await svc.tenants.update_tenant(world.operator, "acme", list_users=False)
    acme = await svc.public.resolve_tenant("acme")
    assert not acme.list_users
    with pytest.raises(PermissionDenied, match="does not publish its user list"):
        await svc.users.directory(acme)
    with pytest.raises(PermissionDenied):
        await svc.users.directory(acme, ctx=world.ctx("alice"))
    with pytest.raises(PermissionDenied):
        await svc.users.directory(acme, ctx=world.ctx("globex_admin"))
    page = await svc.users.directory(acme, ctx=world.ctx("acme_admin"))
    assert [u.username for u in page.users] == ["alice", "bob", "ghost"]
    # a single user is still answered
    assert (await svc.public.public_user(acme, "alice")) is not None


# -- history -----------------------------------------------------------------------


async def test_cleared_status_has_no_time(world: World):
    svc, op = world.service, world.operator
    await svc.users.set_status(op, "acme", "bob", "x")
    user = await svc.users.clear_status(op, "acme", "bob")
    assert user.status is None and user.status_set_at is None


async def test_plan_round_trip(world: World):
    svc, op = world.service, world.operator
    text = "Line one\r\n\tindented ☕\r\n" + "é" * 100
    user = await svc.users.set_plan(op, "acme", "alice", text)
    assert user.plan == "Line one\n\tindented ☕\n" + "é" * 100
    acme = await svc.public.resolve_tenant("acme")
    assert (await svc.public.public_user(acme, "alice")).plan == user.plan
    assert (await svc.users.set_plan(op, "acme", "alice", "")).plan == ""
    big = "x" * (16 * 1024)
    assert (await svc.users.set_plan(op, "acme", "alice", big)).plan == big


async def test_audit_names_the_user_for_filtering(world: World):
    svc, op = world.service, world.operator
    await svc.users.set_status(op, "acme", "alice", "a")
    await svc.users.set_status(op, "acme", "bob", "b")
    events = await svc.audit.audit_log(op, AuditQuery(tenant="acme", username="Alice"))
    assert {e.target for e in events} == {"alice@acme"}
    assert "status.set" in [e.action for e in events]
