"""API tokens and admin accounts: secrets, hashes, expiry, revocation, logins."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fingerplat.domain.errors import (
    AuthenticationFailed,
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
)
from fingerplat.domain.model import AuditQuery, Channel, Context, Role, TokenScope
from fingerplat.service import FingerplatService
from tests.integration.service.conftest import Clock, World, latest_audit, snapshot

# -- tokens ------------------------------------------------------------------------


async def test_token_principals(world: World):
    expected = {
        "alice": (Role.USER, "acme", True),
        "acme_admin": (Role.TENANT_ADMIN, "acme", False),
        "platform": (Role.PLATFORM_ADMIN, None, False),
    }
    for who, (role, tenant, has_user) in expected.items():
        principal = world.ctx(who).principal
        assert principal.role is role
        assert principal.token_id == world.token_ids[who]
        if tenant is None:
            assert principal.tenant_id is None
        else:
            assert principal.tenant_id == (await world.service.public.resolve_tenant(tenant)).id
        assert (principal.user_id is not None) is has_user
    assert world.ctx("alice").principal.name == f"token:{world.token_ids['alice']}(alice@acme)"


GARBAGE = [
    "",
    " ",
    "garbage",
    "fp",
    "fp_",
    "fp_1",
    "fp_1_",
    "fp_x_secret",
    "fp_-1_secret",
    "xx_1_secret",
    "fp_99999_secret",
    "fp_" + "9" * 30 + "_secret",
    "fp_1_" + "a" * 5000,
    "\x00\xff\ufffd",
    "Bearer fp_1_abc",
]


async def test_bad_tokens_are_refused_and_audited(world: World):
    svc = world.service
    real = world.secrets["alice"]
    token_id = world.token_ids["alice"]
    wrong_secret = f"fp_{token_id}_" + "A" * 43
    flipped = real[:-1] + ("A" if real[-1] != "A" else "B")
    other_id = real.replace(f"fp_{token_id}_", f"fp_{world.token_ids['carol']}_", 1)
    before = await snapshot(svc)
    # One address each: from one address only the first few failures of a
    # window get a row of their own (test_auth_throttle.py covers that).
    for n, presented in enumerate([*GARBAGE, wrong_secret, flipped, other_id]):
        address = f"203.0.113.{n + 1}"
        with pytest.raises(AuthenticationFailed, match=r"^invalid token$"):
            await svc.credentials.authenticate_token(presented, Channel.SETTER, address)
        [event] = await latest_audit(svc, world.operator)
        assert (event.action, event.outcome, event.actor) == ("auth.token", "denied", "anonymous")
        assert (event.channel, event.remote_addr) == ("setter", address)
        assert presented[:20] not in event.target or presented == ""
    assert await snapshot(svc) == before
    assert (await svc.credentials.authenticate_token(
        " " + real + "\r\n", Channel.SETTER)).token_id == token_id


async def test_token_expiry_is_honoured(clocked: FingerplatService, clock: Clock, operator):
    svc = clocked
    await svc.users.add_user(operator, None, "alice")
    issued = await svc.credentials.create_token(
        operator, TokenScope.USER, username="alice", expires_days=1)
    assert issued.token.expires_at == clock.now + timedelta(days=1)
    clock.advance(hours=23, minutes=59)
    assert (await svc.credentials.authenticate_token(
        issued.secret, Channel.API)).user_id is not None
    clock.advance(minutes=1)
    with pytest.raises(AuthenticationFailed, match="token expired"):
        await svc.credentials.authenticate_token(issued.secret, Channel.API, "192.0.2.1")
    [event] = await latest_audit(svc, operator)
    assert (event.action, event.outcome, event.detail) == ("auth.token", "denied", "token expired")
    assert event.tenant == "default"
    never = await svc.credentials.create_token(operator, TokenScope.TENANT)
    assert never.token.expires_at is None
    clock.advance(days=3650)
    assert (await svc.credentials.authenticate_token(
        never.secret, Channel.API)).role is Role.TENANT_ADMIN


async def test_token_creation_input_rules(service, operator):
    for days in [0, -1, 3651]:
        with pytest.raises(InvalidInput, match="between 1 and 3650 days"):
            await service.credentials.create_token(operator, TokenScope.TENANT, expires_days=days)
    with pytest.raises(InvalidInput, match="needs a user name"):
        await service.credentials.create_token(operator, TokenScope.USER)
    with pytest.raises(NotFound, match="no such user 'nobody'"):
        await service.credentials.create_token(operator, TokenScope.USER, username="nobody")


async def test_revoked_token_is_refused(world: World):
    svc, op = world.service, world.operator
    token_id = world.token_ids["alice"]
    revoked = await svc.credentials.revoke_token(world.ctx("acme_admin"), token_id)
    assert revoked.revoked_at is not None
    with pytest.raises(AuthenticationFailed, match="token revoked"):
        await svc.credentials.authenticate_token(world.secrets["alice"], Channel.SETTER)
    [denied, revoke] = await latest_audit(svc, op, 2)
    assert (revoke.action, revoke.outcome, revoke.before, revoke.after) == (
        "token.revoke", "ok", {"revoked": False}, {"revoked": True})
    assert revoke.actor == world.ctx("acme_admin").principal.name
    assert (denied.action, denied.detail) == ("auth.token", "token revoked")
    again = await svc.credentials.revoke_token(op, token_id)  # idempotent, nothing new audited
    assert again.revoked_at == revoked.revoked_at
    assert (await latest_audit(svc, op))[0].id == denied.id
    with pytest.raises(NotFound, match="no such token: 424242"):
        await svc.credentials.revoke_token(op, 424242)


async def test_last_used_is_recorded_and_throttled(clocked: FingerplatService, clock: Clock,
                                                    operator):
    svc = clocked
    issued = await svc.credentials.create_token(operator, TokenScope.TENANT)

    async def last_used():
        [token] = [t for t in await svc.credentials.list_tokens(
            operator) if t.id == issued.token.id]
        return token.last_used_at

    assert await last_used() is None
    first = clock.now
    await svc.credentials.authenticate_token(issued.secret, Channel.API)
    assert await last_used() == first
    clock.advance(seconds=30)
    await svc.credentials.authenticate_token(issued.secret, Channel.API)
    assert await last_used() == first  # within a minute: not written again
    clock.advance(seconds=31)
    await svc.credentials.authenticate_token(issued.secret, Channel.API)
    assert await last_used() == clock.now


async def test_token_listing_is_per_tenant(world: World):
    svc = world.service
    acme_tokens = await svc.credentials.list_tokens(world.ctx("acme_admin"), "acme")
    assert {t.id for t in acme_tokens} == {world.token_ids["acme_admin"], world.token_ids["alice"]}
    everything = await svc.credentials.list_tokens(world.operator, all_tenants=True)
    assert {t.id for t in everything} == set(world.token_ids.values())
    for who in ("acme_admin", "alice", "anonymous"):
        with pytest.raises(Exception, match=r"platform admins|not an admin"):
            await svc.credentials.list_tokens(world.ctx(who), all_tenants=True)
    with pytest.raises(PermissionDenied, match="not an admin of tenant 'globex'"):
        await svc.credentials.list_tokens(world.ctx("acme_admin"), "globex")


# -- admin accounts ----------------------------------------------------------------


async def test_tenant_admin_login_gets_a_tenant_principal(service, operator):
    await service.tenants.create_tenant(operator, "acme")
    await service.credentials.add_admin(
        operator, "acme-ops", "correct horse battery", tenant_name="acme")
    principal = await service.credentials.authenticate_admin("acme-ops", "correct horse battery",
                                                 Channel.WEB)
    acme = await service.public.resolve_tenant("acme")
    assert (principal.role, principal.tenant_id) == (Role.TENANT_ADMIN, acme.id)
    ctx = Context(principal, Channel.WEB)
    await service.users.add_user(ctx, "acme", "alice")
    with pytest.raises(Exception, match="not an admin"):
        await service.users.add_user(ctx, None, "alice")
    [admin] = await service.credentials.list_admins(operator)
    assert (admin.name, admin.tenant_slug) == ("acme-ops", "acme")
    events = await service.audit.audit_log(ctx, AuditQuery(tenant="acme", action="auth.login"))
    assert [e.actor for e in events] == ["admin:acme-ops"]


async def test_admin_rules_and_removal(service, operator):
    with pytest.raises(InvalidInput, match="at least 8"):
        await service.credentials.add_admin(operator, "ops", "short")
    with pytest.raises(InvalidInput, match="invalid admin name"):
        await service.credentials.add_admin(operator, "o p s", "correct horse battery")
    with pytest.raises(NotFound, match="no such tenant"):
        await service.credentials.add_admin(
            operator, "ops", "correct horse battery", tenant_name="nope")
    await service.credentials.add_admin(operator, "ops", "correct horse battery")
    with pytest.raises(Conflict, match="admin ops already exists"):
        await service.credentials.add_admin(operator, "ops", "another password")
    await service.credentials.remove_admin(operator, "ops")
    with pytest.raises(AuthenticationFailed):
        await service.credentials.authenticate_admin("ops", "correct horse battery", Channel.WEB)
    with pytest.raises(NotFound, match="no such admin"):
        await service.credentials.remove_admin(operator, "ops")
    actions = [e.action for e in await latest_audit(service, operator, 3)]
    assert actions == ["auth.login", "admin.remove", "admin.create"]
