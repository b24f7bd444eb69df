"""API tokens and admin accounts: secrets, hashes, expiry, revocation, logins."""

from __future__ import annotations

import base64
import hashlib

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, update

from fingerplat.domain.errors import (
    AuthenticationFailed,
)
from fingerplat.domain.model import Channel, Role, TokenScope
from fingerplat.repository.schema import admins, api_tokens, metadata
from fingerplat.service import FingerplatService
from tests.integration.service.conftest import latest_audit


async def _stored_text(service: FingerplatService) -> str:
    """Every value of every table (audit included) as one string, to search secrets in."""
    parts: list[str] = []
    async with service.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in await conn.execute(select(table)):
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


# -- tokens ------------------------------------------------------------------------


async def test_token_secret_is_random_shown_once_and_stored_only_as_sha256(service, operator):
    await service.users.add_user(operator, None, "alice")
    first = await service.credentials.create_token(operator, TokenScope.USER, username="alice")
    second = await service.credentials.create_token(operator, TokenScope.USER, username="alice")
    prefix, token_id, secret = first.secret.split("_", 2)
    assert (prefix, int(token_id)) == ("fp", first.token.id)
    assert len(base64.urlsafe_b64decode(secret + "=" * (-len(secret) % 4))) >= 32  # 256 bits
    assert second.secret.split("_", 2)[2] != secret
    async with service.engine.connect() as conn:
        stored = (await conn.execute(
            select(api_tokens.c.secret_hash).where(api_tokens.c.id == first.token.id)
        )).scalar_one()
    assert stored == hashlib.sha256(secret.encode()).hexdigest()
    everything = await _stored_text(service)
    assert secret not in everything and first.secret not in everything
    listed = await service.credentials.list_tokens(operator, None)
    assert [t.id for t in listed] == [first.token.id, second.token.id]
    assert all(not hasattr(t, "secret") for t in listed)
    assert listed[0].username == "alice" and listed[0].created_by == operator.principal.name
    [event] = await latest_audit(service, operator)
    assert event.action == "token.create" and secret not in str(event.after)


# -- admin accounts ----------------------------------------------------------------


async def test_admin_password_is_argon2id_and_login_is_audited(service, operator):
    admin = await service.credentials.add_admin(operator, "Ops", "correct horse battery")
    assert admin.name == "ops" and admin.tenant_id is None
    async with service.engine.connect() as conn:
        stored = (await conn.execute(select(admins.c.password_hash))).scalar_one()
    assert stored.startswith("$argon2id$")
    assert "correct horse battery" not in await _stored_text(service)

    principal = await service.credentials.authenticate_admin(
        "OPS", "correct horse battery", Channel.WEB,
                                                 "192.0.2.5")
    assert (principal.role, principal.name, principal.admin_id) == (
        Role.PLATFORM_ADMIN, "admin:ops", admin.id)
    [ok] = await latest_audit(service, operator)
    assert (ok.action, ok.outcome, ok.actor, ok.channel, ok.remote_addr) == (
        "auth.login", "ok", "admin:ops", "web", "192.0.2.5")

    for name, password in [("ops", "wrong password"), ("nobody", "correct horse battery"),
                           ("bad name!", "x"), ("ops", "p" * 5000)]:
        with pytest.raises(AuthenticationFailed, match=r"^wrong admin name or password$"):
            await service.credentials.authenticate_admin(name, password, Channel.WEB, "192.0.2.6")
        [denied] = await latest_audit(service, operator)
        assert (denied.action, denied.outcome, denied.actor, denied.remote_addr) == (
            "auth.login", "denied", "anonymous", "192.0.2.6")


async def test_weak_password_hash_is_upgraded_on_login(service, operator):
    await service.credentials.add_admin(operator, "ops", "correct horse battery")
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("correct horse battery")
    async with service.engine.begin() as conn:
        await conn.execute(update(admins).values(password_hash=weak))
    await service.credentials.authenticate_admin("ops", "correct horse battery", Channel.WEB)
    async with service.engine.connect() as conn:
        stored = (await conn.execute(select(admins.c.password_hash))).scalar_one()
    assert stored != weak and stored.startswith("$argon2id$")
    assert not PasswordHasher().check_needs_rehash(stored)
    await service.credentials.authenticate_admin("ops", "correct horse battery", Channel.WEB)
