"""User use cases: accounts, status, plan, history, and the public directory reads."""

from __future__ import annotations

import pytest

from fingerplat.domain.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    PermissionDenied,
    UserNotFound,
)
from fingerplat.domain.model import AuditQuery, Channel
from tests.integration.service.conftest import World, latest_audit, snapshot


async def test_changes_are_audited_with_actor_channel_before_and_after(world: World):
    svc, op = world.service, world.operator
    await svc.set_status(op, "acme", "alice", "away")
    await svc.set_status(world.ctx("alice"), "acme", "alice", "back at 3")
    await svc.edit_user(op, "acme", "alice", office="Room 12", hidden=True)
    await svc.set_plan(op, "acme", "alice", "Tea at four.")
    await svc.clear_status(op, "acme", "alice")
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


async def test_user_lifecycle_and_case_insensitive_lookup(service, operator):
    user = await service.add_user(operator, None, "Alice", full_name="Alice Liddell",
                                  office="B1", phone="555", project="croquet")
    assert user.username == "alice" and user.tenant_id == (await service.resolve_tenant()).id
    assert (await service.get_user(operator, None, "ALICE")).full_name == "Alice Liddell"
    with pytest.raises(Conflict, match="already exists"):
        await service.add_user(operator, None, "ALICE")
    edited = await service.edit_user(operator, None, "alice", project="")
    assert edited.project == "" and edited.office == "B1"
    await service.remove_user(operator, None, "alice")
    with pytest.raises(UserNotFound) as info:
        await service.get_user(operator, None, "alice")
    assert (info.value.username, info.value.tenant_slug) == ("alice", "default")
    events = await latest_audit(service, operator, 3)
    assert [e.action for e in events] == ["user.remove", "user.update", "user.create"]
    assert events[0].before["full_name"] == "Alice Liddell"


async def test_edit_without_change_writes_no_audit_event(world: World):
    svc, op = world.service, world.operator
    [before] = await latest_audit(svc, op)
    await svc.edit_user(op, "acme", "alice", full_name="Alice Liddell")
    [after] = await latest_audit(svc, op)
    assert after.id == before.id


async def test_removing_a_user_removes_their_tokens(world: World):
    svc, op = world.service, world.operator
    await svc.remove_user(op, "acme", "alice")
    with pytest.raises(AuthenticationFailed):
        await svc.authenticate_token(world.secrets["alice"], Channel.API)
    assert world.token_ids["alice"] not in [t.id for t in await svc.list_tokens(op, "acme")]


async def test_invalid_input_changes_nothing(world: World):
    svc, op = world.service, world.operator
    before = await snapshot(svc)
    bad_calls = [
        svc.set_status(op, "acme", "alice", "x" * 281),
        svc.set_status(op, "acme", "alice", "two\nlines"),
        svc.set_status(op, "acme", "alice", "\x1b[2J"),
        svc.set_plan(op, "acme", "alice", "p" * (16 * 1024 + 1)),
        svc.add_user(op, "acme", "9lives"),
        svc.add_user(op, "acme", "eve", full_name="x\ny"),
        svc.edit_user(op, "acme", "alice", phone="\x00"),
    ]
    for call in bad_calls:
        with pytest.raises(InvalidInput):
            await call
    assert await snapshot(svc) == before


async def test_unknown_user_and_tenant(world: World):
    svc, op = world.service, world.operator
    with pytest.raises(UserNotFound, match="no such user 'nobody' in tenant 'acme'"):
        await svc.set_status(op, "acme", "nobody", "x")
    with pytest.raises(UserNotFound):
        await svc.remove_user(op, "acme", "nobody")
    with pytest.raises(UserNotFound):
        await svc.edit_user(op, "acme", "nobody", office="x")
    with pytest.raises(Exception, match="no such tenant"):
        await svc.add_user(op, "initech", "peter")


# -- hidden users ------------------------------------------------------------------


async def test_hidden_user_is_invisible_in_public_reads(world: World):
    svc, op = world.service, world.operator
    acme = await svc.resolve_tenant("acme")
    await svc.set_status(op, "acme", "ghost", "boo")
    assert await svc.public_user(acme, "ghost") is None
    assert await svc.public_user(acme, "nobody") is None
    assert (await svc.public_user(acme, "Alice")).username == "alice"
    for who in ("ghost", "nobody"):
        with pytest.raises(UserNotFound) as info:
            await svc.public_history(acme, who)
        assert str(info.value) == f"no such user '{who}' in tenant 'acme'"  # alike
        with pytest.raises(UserNotFound):
            await svc.get_user(world.ctx("anonymous"), "acme", who)
        with pytest.raises(UserNotFound):
            await svc.history(world.ctx("alice"), "acme", who)
    page = await svc.directory(acme)
    assert [u.username for u in page.users] == ["alice", "bob"] and page.total == 2
    # other tenants' admins see it as the public does
    with pytest.raises(UserNotFound):
        await svc.get_user(world.ctx("globex_admin"), "acme", "ghost")


async def test_hidden_user_is_visible_to_admins(world: World):
    svc = world.service
    acme = await svc.resolve_tenant("acme")
    await svc.set_status(world.operator, "acme", "ghost", "boo")
    for who in ("acme_admin", "platform"):
        ctx = world.ctx(who)
        assert (await svc.get_user(ctx, "acme", "ghost")).hidden
        assert [h.text for h in await svc.history(ctx, "acme", "ghost")] == ["boo"]
        page = await svc.directory(acme, ctx=ctx)
        assert [u.username for u in page.users] == ["alice", "bob", "ghost"]
        assert page.total == 3


# -- the directory -----------------------------------------------------------------


async def test_directory_pages_with_cursors(service, operator):
    names = [f"user{i:02d}" for i in range(7)]
    for name in reversed(names):
        await service.add_user(operator, None, name)
    await service.edit_user(operator, None, "user03", hidden=True)
    tenant = await service.resolve_tenant()
    seen, cursor, pages = [], None, 0
    while True:
        page = await service.directory(tenant, limit=2, cursor=cursor)
        assert page.total == 6
        seen += [u.username for u in page.users]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [n for n in names if n != "user03"]
    assert pages == 3
    exact = await service.directory(tenant, limit=6)
    assert len(exact.users) == 6 and exact.next_cursor is None
    found = await service.directory(tenant, search="USER0")
    assert len(found.users) == 6
    assert [u.username for u in (await service.directory(tenant, search="r05")).users] == [
        "user05"]
    assert (await service.directory(tenant, search="%")).users == []  # LIKE wildcards are literal


async def test_directory_refuses_garbage_cursors_and_limits(service):
    tenant = await service.resolve_tenant()
    for cursor in ["!!!", "bm90IGEgdXNlcg", "////", "\x00", "é"]:
        with pytest.raises(InvalidInput, match="invalid cursor"):
            await service.directory(tenant, cursor=cursor)
    for limit in [0, -1, 1001]:
        with pytest.raises(InvalidInput, match="limit must be between 1 and 1000"):
            await service.directory(tenant, limit=limit)
    assert (await service.directory(tenant, limit=1000)).users == []


async def test_list_users_off_hides_the_directory_from_the_public(world: World):
    svc = world.service
    await svc.update_tenant(world.operator, "acme", list_users=False)
    acme = await svc.resolve_tenant("acme")
    assert not acme.list_users
    with pytest.raises(PermissionDenied, match="does not publish its user list"):
        await svc.directory(acme)
    with pytest.raises(PermissionDenied):
        await svc.directory(acme, ctx=world.ctx("alice"))
    with pytest.raises(PermissionDenied):
        await svc.directory(acme, ctx=world.ctx("globex_admin"))
    page = await svc.directory(acme, ctx=world.ctx("acme_admin"))
    assert [u.username for u in page.users] == ["alice", "bob", "ghost"]
    # a single user is still answered
    assert (await svc.public_user(acme, "alice")) is not None


# -- history -----------------------------------------------------------------------


async def test_history_is_newest_first_with_actor_and_channel(world: World):
    svc, op = world.service, world.operator
    acme = await svc.resolve_tenant("acme")
    await svc.set_status(op, "acme", "alice", "one")
    await svc.set_status(world.ctx("alice"), "acme", "alice", "two")
    await svc.clear_status(op, "acme", "alice")
    await svc.set_status(op, "acme", "alice", "three")
    history = await svc.history(op, "acme", "alice")
    assert [h.text for h in history] == ["three", None, "two", "one"]
    assert [h.channel for h in history] == ["cli", "cli", "api", "cli"]
    assert history[2].actor == world.ctx("alice").principal.name
    # The public history says what and when, never who (SPEC 11).
    public = await svc.public_history(acme, "alice")
    assert [(h.text, h.set_at) for h in public] == [(h.text, h.set_at) for h in history]
    assert all(h.actor is None and h.channel is None for h in public)
    assert [h.set_at for h in history] == sorted((h.set_at for h in history), reverse=True)
    assert [h.text for h in await svc.public_history(acme, "alice", limit=2)] == ["three", None]
    assert [h.text for h in await svc.history(op, "acme", "alice", limit=1)] == ["three"]
    user = await svc.get_user(op, "acme", "alice")
    assert user.status == "three" and user.status_set_at == history[0].set_at


async def test_cleared_status_has_no_time(world: World):
    svc, op = world.service, world.operator
    await svc.set_status(op, "acme", "bob", "x")
    user = await svc.clear_status(op, "acme", "bob")
    assert user.status is None and user.status_set_at is None


async def test_plan_round_trip(world: World):
    svc, op = world.service, world.operator
    text = "Line one\r\n\tindented ☕\r\n" + "é" * 100
    user = await svc.set_plan(op, "acme", "alice", text)
    assert user.plan == "Line one\n\tindented ☕\n" + "é" * 100
    acme = await svc.resolve_tenant("acme")
    assert (await svc.public_user(acme, "alice")).plan == user.plan
    assert (await svc.set_plan(op, "acme", "alice", "")).plan == ""
    big = "x" * (16 * 1024)
    assert (await svc.set_plan(op, "acme", "alice", big)).plan == big


async def test_audit_names_the_user_for_filtering(world: World):
    svc, op = world.service, world.operator
    await svc.set_status(op, "acme", "alice", "a")
    await svc.set_status(op, "acme", "bob", "b")
    events = await svc.audit_log(op, AuditQuery(tenant="acme", username="Alice"))
    assert {e.target for e in events} == {"alice@acme"}
    assert "status.set" in [e.action for e in events]
