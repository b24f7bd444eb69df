"""Who may do what, through the real service with principals from real tokens.

Every refused attempt must (1) raise PermissionDenied, (2) change nothing at
all (every table but the audit trail compared before and after) and (3) add
exactly one audit event with outcome ``denied`` naming the actor and channel.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable

import pytest

from fingerplat.domain.errors import PermissionDenied, UserNotFound
from fingerplat.domain.model import AuditQuery, TokenScope
from tests.integration.service.conftest import World, audit_count, latest_audit, snapshot

Attempt = Callable[[World, str], Awaitable[object]]


def _attempts() -> dict[str, tuple[str, Attempt]]:
    """name -> (audited action, attempt made as principal ``who``)."""
    return {
        "add user to globex": ("user.create", lambda w, who: w.service.users.add_user(
            w.ctx(who), "globex", "mallory")),
        "edit carol": ("user.update", lambda w, who: w.service.users.edit_user(
            w.ctx(who), "globex", "carol", full_name="Owned")),
        "hide carol": ("user.update", lambda w, who: w.service.users.edit_user(
            w.ctx(who), "globex", "carol", hidden=True)),
        "remove carol": ("user.remove", lambda w, who: w.service.users.remove_user(
            w.ctx(who), "globex", "carol")),
        "set carol's status": ("status.set", lambda w, who: w.service.users.set_status(
            w.ctx(who), "globex", "carol", "owned")),
        "clear carol's status": ("status.clear", lambda w, who: w.service.users.clear_status(
            w.ctx(who), "globex", "carol")),
        "set carol's plan": ("plan.set", lambda w, who: w.service.users.set_plan(
            w.ctx(who), "globex", "carol", "owned")),
        "user token for carol": ("token.create", lambda w, who: w.service.credentials.create_token(
            w.ctx(who), TokenScope.USER, tenant_name="globex", username="carol")),
        "globex admin token": ("token.create", lambda w, who: w.service.credentials.create_token(
            w.ctx(who), TokenScope.TENANT, tenant_name="globex")),
        "platform token": ("token.create", lambda w, who: w.service.credentials.create_token(
            w.ctx(who), TokenScope.PLATFORM)),
        "revoke carol's token": ("token.revoke", lambda w, who: w.service.credentials.revoke_token(
            w.ctx(who), w.token_ids["carol"])),
        "revoke the platform token": (
            "token.revoke", lambda w, who: w.service.credentials.revoke_token(
            w.ctx(who), w.token_ids["platform"])),
        "rename globex": ("tenant.update", lambda w, who: w.service.tenants.update_tenant(
            w.ctx(who), "globex", name="Owned")),
        "add a domain to acme": ("tenant.update", lambda w, who: w.service.tenants.update_tenant(
            w.ctx(who), "acme", add_domains=["evil.example"])),
        "remove acme's domain": ("tenant.update", lambda w, who: w.service.tenants.update_tenant(
            w.ctx(who), "acme", remove_domains=["acme.example"])),
        "turn on forwarding in acme": (
            "tenant.update", lambda w, who: w.service.tenants.update_tenant(
            w.ctx(who), "acme", forwarding=True)),
        "create a tenant": ("tenant.create", lambda w, who: w.service.tenants.create_tenant(
            w.ctx(who), "evil")),
        "remove globex": ("tenant.remove", lambda w, who: w.service.tenants.remove_tenant(
            w.ctx(who), "globex")),
        "remove acme": ("tenant.remove", lambda w, who: w.service.tenants.remove_tenant(
            w.ctx(who), "acme")),
        "add an admin": ("admin.create", lambda w, who: w.service.credentials.add_admin(
            w.ctx(who), "evil", "correct horse battery")),
        "add an acme admin": ("admin.create", lambda w, who: w.service.credentials.add_admin(
            w.ctx(who), "evil", "correct horse battery", tenant_name="acme")),
        "remove an admin": ("admin.remove", lambda w, who: w.service.credentials.remove_admin(
            w.ctx(who), "ops")),
        "read globex's tenant": ("tenant.read", lambda w, who: w.service.tenants.get_tenant(
            w.ctx(who), "globex")),
        "read globex's audit": ("audit.read", lambda w, who: w.service.audit.audit_log(
            w.ctx(who), AuditQuery(tenant="globex"))),
        "read every audit": ("audit.read", lambda w, who: w.service.audit.audit_log(
            w.ctx(who), AuditQuery(), all_tenants=True)),
    }


ACME_ONLY_ATTEMPTS = {
    "add user to acme": ("user.create", lambda w, who: w.service.users.add_user(
        w.ctx(who), "acme", "mallory")),
    "edit bob": ("user.update", lambda w, who: w.service.users.edit_user(
        w.ctx(who), "acme", "bob", office="B12")),
    "edit alice herself": ("user.update", lambda w, who: w.service.users.edit_user(
        w.ctx(who), "acme", "alice", full_name="Queen Alice")),
    "remove bob": ("user.remove", lambda w, who: w.service.users.remove_user(
        w.ctx(who), "acme", "bob")),
    "set bob's status": ("status.set", lambda w, who: w.service.users.set_status(
        w.ctx(who), "acme", "bob", "owned")),
    "set hidden ghost's status": ("status.set", lambda w, who: w.service.users.set_status(
        w.ctx(who), "acme", "ghost", "owned")),
    "set a missing user's status": ("status.set", lambda w, who: w.service.users.set_status(
        w.ctx(who), "acme", "nobody", "owned")),
    "set bob's plan": ("plan.set", lambda w, who: w.service.users.set_plan(
        w.ctx(who), "acme", "bob", "owned")),
    "user token for bob": ("token.create", lambda w, who: w.service.credentials.create_token(
        w.ctx(who), TokenScope.USER, tenant_name="acme", username="bob")),
    "acme admin token": ("token.create", lambda w, who: w.service.credentials.create_token(
        w.ctx(who), TokenScope.TENANT, tenant_name="acme")),
    "revoke the acme admin token": (
        "token.revoke", lambda w, who: w.service.credentials.revoke_token(
        w.ctx(who), w.token_ids["acme_admin"])),
    "rename acme": ("tenant.update", lambda w, who: w.service.tenants.update_tenant(
        w.ctx(who), "acme", name="Owned")),
    "stop listing acme's users": ("tenant.update", lambda w, who: w.service.tenants.update_tenant(
        w.ctx(who), "acme", list_users=False)),
    "read acme's audit": ("audit.read", lambda w, who: w.service.audit.audit_log(
        w.ctx(who), AuditQuery(tenant="acme"))),
}


async def _assert_refused(world: World, who: str, name: str, action: str,
                          attempt: Attempt) -> None:
    service, ctx = world.service, world.ctx(who)
    before = await snapshot(service)
    events_before = await audit_count(service)
    with pytest.raises(PermissionDenied):
        await attempt(world, who)
    assert await snapshot(service) == before, f"{who}: {name!r} changed data"
    assert await audit_count(service) == events_before + 1, f"{who}: {name!r} not audited once"
    [event] = await latest_audit(service, world.operator)
    assert (event.action, event.outcome) == (action, "denied"), f"{who}: {name!r}"
    assert event.actor == ctx.principal.name
    assert event.channel == ctx.channel.value
    assert event.remote_addr == ctx.remote_addr
    assert event.detail, "a refusal records why"


async def _with_admin(world: World) -> None:
    await world.service.credentials.add_admin(world.operator, "ops", "correct horse battery")


async def test_tenant_admin_is_refused_on_other_tenants_and_platform_matters(world: World):
    await _with_admin(world)
    for name, (action, attempt) in _attempts().items():
        await _assert_refused(world, "acme_admin", name, action, attempt)


async def test_user_token_is_refused_everything_but_own_status_and_plan(world: World):
    await _with_admin(world)
    attempts = {**_attempts(), **ACME_ONLY_ATTEMPTS}
    for name, (action, attempt) in attempts.items():
        await _assert_refused(world, "alice", name, action, attempt)


async def test_anonymous_is_refused_every_change(world: World):
    await _with_admin(world)
    attempts = {**_attempts(), **ACME_ONLY_ATTEMPTS}
    attempts["set alice's status"] = ("status.set", lambda w, who: w.service.users.set_status(
        w.ctx(who), "acme", "alice", "owned"))
    attempts["set alice's plan"] = ("plan.set", lambda w, who: w.service.users.set_plan(
        w.ctx(who), "acme", "alice", "owned"))
    for n, (name, (action, attempt)) in enumerate(attempts.items()):
        # One address each: from one address only the first few anonymous
        # refusals of a window get a row of their own (test_auth_throttle.py).
        world.contexts["anonymous"] = dataclasses.replace(
            world.contexts["anonymous"], remote_addr=f"198.51.100.{n + 1}")
        await _assert_refused(world, "anonymous", name, action, attempt)


async def test_tenant_admin_manages_own_tenant(world: World):
    ctx = world.ctx("acme_admin")
    svc = world.service
    await svc.users.add_user(ctx, "acme", "dave")
    await svc.users.edit_user(ctx, "acme", "bob", office="B12", hidden=True)
    await svc.users.set_status(ctx, "acme", "bob", "in a meeting")
    await svc.users.set_plan(ctx, "acme", "bob", "plan")
    issued = await svc.credentials.create_token(
        ctx, TokenScope.USER, tenant_name="acme", username="dave")
    await svc.credentials.revoke_token(ctx, issued.token.id)
    await svc.tenants.update_tenant(ctx, "acme", name="Acme Inc", list_users=False)
    await svc.users.remove_user(ctx, "acme", "dave")
    events = await svc.audit.audit_log(ctx, AuditQuery(tenant="acme", limit=8))
    assert [e.action for e in events] == [
        "user.remove", "tenant.update", "token.revoke", "token.create", "plan.set",
        "status.set", "user.update", "user.create",
    ]
    assert all(e.outcome == "ok" and e.actor == ctx.principal.name for e in events)
    # ...and sees hidden users of its own tenant, and missing users are named as missing.
    assert (await svc.users.get_user(ctx, "acme", "bob")).hidden
    with pytest.raises(UserNotFound):
        await svc.users.set_status(ctx, "acme", "nobody", "x")


async def test_user_token_sets_own_status_and_plan(world: World):
    ctx = world.ctx("alice")
    user = await world.service.users.set_status(ctx, "acme", "ALICE", "reading")
    assert user.status == "reading"
    user = await world.service.users.set_plan(ctx, "acme", "alice", "Down the rabbit hole.")
    assert user.plan == "Down the rabbit hole."
    user = await world.service.users.clear_status(ctx, "acme", "alice")
    assert user.status is None
    events = await latest_audit(world.service, world.operator, 3)
    assert [(e.action, e.outcome, e.actor) for e in events] == [
        ("status.clear", "ok", ctx.principal.name),
        ("plan.set", "ok", ctx.principal.name),
        ("status.set", "ok", ctx.principal.name),
    ]


async def test_user_token_of_one_tenant_cannot_touch_same_name_elsewhere(world: World):
    """carol's token may set carol@globex, never a user of the same id or name elsewhere."""
    svc, op = world.service, world.operator
    await svc.users.add_user(op, "acme", "carol")
    before = await snapshot(svc)
    with pytest.raises(PermissionDenied):
        await svc.users.set_status(world.ctx("carol"), "acme", "carol", "impostor")
    assert await snapshot(svc) == before
    assert (await svc.users.set_status(world.ctx("carol"), "globex", "carol", "me")).status == "me"


async def test_only_a_signed_in_user_has_an_own_account_page(world: World):
    """Refused like every other permission: PermissionDenied, nothing changed, one row."""
    for who in ("acme_admin", "platform", "anonymous"):
        await _assert_refused(world, who, "own account page", "account.read",
                              lambda w, who: w.service.self_service.own_account(w.ctx(who)))
    tenant, user, _fields = await world.service.self_service.own_account(world.ctx("alice"))
    assert (tenant.slug, user.username) == ("acme", "alice")
