"""User use cases: accounts, status, plan, history, and the public directory reads."""

from __future__ import annotations

import pytest

from fingerplat.domain.errors import (
    AuthenticationFailed,
    Conflict,
    UserNotFound,
)
from fingerplat.domain.model import Channel
from tests.integration.service.conftest import World, latest_audit


async def test_user_lifecycle_and_case_insensitive_lookup(service, operator):
    user = await service.users.add_user(operator, None, "Alice", full_name="Alice Liddell",
                                  office="B1", phone="555", project="croquet")
    assert user.username == "alice" and user.tenant_id == (await service.public.resolve_tenant()).id
    assert (await service.users.get_user(operator, None, "ALICE")).full_name == "Alice Liddell"
    with pytest.raises(Conflict, match="already exists"):
        await service.users.add_user(operator, None, "ALICE")
    edited = await service.users.edit_user(operator, None, "alice", project="")
    assert edited.project == "" and edited.office == "B1"
    await service.users.remove_user(operator, None, "alice")
    with pytest.raises(UserNotFound) as info:
        await service.users.get_user(operator, None, "alice")
    assert (info.value.username, info.value.tenant_slug) == ("alice", "default")
    events = await latest_audit(service, operator, 3)
    assert [e.action for e in events] == ["user.remove", "user.update", "user.create"]
    assert events[0].before["full_name"] == "Alice Liddell"


async def test_removing_a_user_removes_their_tokens(world: World):
    svc, op = world.service, world.operator
    await svc.users.remove_user(op, "acme", "alice")
    with pytest.raises(AuthenticationFailed):
        await svc.credentials.authenticate_token(world.secrets["alice"], Channel.API)
    assert world.token_ids["alice"] not in [
        t.id for t in await svc.credentials.list_tokens(op, "acme")]


# -- hidden users ------------------------------------------------------------------


async def test_hidden_user_is_invisible_in_public_reads(world: World):
    svc, op = world.service, world.operator
    acme = await svc.public.resolve_tenant("acme")
    await svc.users.set_status(op, "acme", "ghost", "boo")
    assert await svc.public.public_user(acme, "ghost") is None
    assert await svc.public.public_user(acme, "nobody") is None
    assert (await svc.public.public_user(acme, "Alice")).username == "alice"
    for who in ("ghost", "nobody"):
        with pytest.raises(UserNotFound) as info:
            await svc.public.public_history(acme, who)
        assert str(info.value) == f"no such user '{who}' in tenant 'acme'"  # alike
        with pytest.raises(UserNotFound):
            await svc.users.get_user(world.ctx("anonymous"), "acme", who)
        with pytest.raises(UserNotFound):
            await svc.users.history(world.ctx("alice"), "acme", who)
    page = await svc.users.directory(acme)
    assert [u.username for u in page.users] == ["alice", "bob"] and page.total == 2
    # other tenants' admins see it as the public does
    with pytest.raises(UserNotFound):
        await svc.users.get_user(world.ctx("globex_admin"), "acme", "ghost")


# -- the directory -----------------------------------------------------------------


async def test_directory_pages_with_cursors(service, operator):
    names = [f"user{i:02d}" for i in range(7)]
    for name in reversed(names):
        await service.users.add_user(operator, None, name)
    await service.users.edit_user(operator, None, "user03", hidden=True)
    tenant = await service.public.resolve_tenant()
    seen, cursor, pages = [], None, 0
    while True:
        page = await service.users.directory(tenant, limit=2, cursor=cursor)
        assert page.total == 6
        seen += [u.username for u in page.users]
        pages += 1
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [n for n in names if n != "user03"]
    assert pages == 3
    exact = await service.users.directory(tenant, limit=6)
    assert len(exact.users) == 6 and exact.next_cursor is None
    found = await service.users.directory(tenant, search="USER0")
    assert len(found.users) == 6
    assert [u.username for u in (await service.users.directory(tenant, search="r05")).users] == [
        "user05"]
    assert (await service.users.directory(
        tenant, search="%")).users == []  # LIKE wildcards are literal


# -- history -----------------------------------------------------------------------


async def test_history_is_newest_first_with_actor_and_channel(world: World):
    svc, op = world.service, world.operator
    acme = await svc.public.resolve_tenant("acme")
    await svc.users.set_status(op, "acme", "alice", "one")
    await svc.users.set_status(world.ctx("alice"), "acme", "alice", "two")
    await svc.users.clear_status(op, "acme", "alice")
    await svc.users.set_status(op, "acme", "alice", "three")
    history = await svc.users.history(op, "acme", "alice")
    assert [h.text for h in history] == ["three", None, "two", "one"]
    assert [h.channel for h in history] == ["cli", "cli", "api", "cli"]
    assert history[2].actor == world.ctx("alice").principal.name
    # The public history says what and when, never who (SPEC 11).
    public = await svc.public.public_history(acme, "alice")
    assert [(h.text, h.set_at) for h in public] == [(h.text, h.set_at) for h in history]
    assert all(h.actor is None and h.channel is None for h in public)
    assert [h.set_at for h in history] == sorted((h.set_at for h in history), reverse=True)
    assert [h.text for h in await svc.public.public_history(
        acme, "alice", limit=2)] == ["three", None]
    assert [h.text for h in await svc.users.history(op, "acme", "alice", limit=1)] == ["three"]
    user = await svc.users.get_user(op, "acme", "alice")
    assert user.status == "three" and user.status_set_at == history[0].set_at
