"""Self-service: users with a password sign in on the web and change themselves only.

``fingerplat user passwd`` (an admin) sets the password; the web's ``/login``
checks it (:meth:`authenticate_user`, argon2id like admin passwords) and
starts a database session (service/web_sessions.py) whose principal is
``user:<name>`` with the user's id. Every change from ``/me`` goes through
the ``own_*`` use cases below, which first make sure that the tenant and
user named by the request are the signed-in user's own: a form edited by
hand to name anyone else is refused and audited before anything is looked
up, so it can neither change nor probe another account.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fingerplat.domain import expiry, rules
from fingerplat.domain import self_service as self_rules
from fingerplat.domain.audit_actions import AuditAction
from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.expiry import Expiry
from fingerplat.domain.model import ChangeEvent, Channel, Context, Principal, Role, Tenant, User
from fingerplat.service import credential_crypto, permissions
from fingerplat.service.base import ServiceCore, UseCase, user_target
from fingerplat.service.throttle import ThrottleUseCases
from fingerplat.service.users import UserUseCases, _profile

MAX_PASSWORD_CHARS = 1024


def _label(text: str | None, limit: int) -> str:
    """A request-supplied name for the audit trail: one line, bounded."""
    return "".join(c for c in (text or "?") if c.isprintable())[:limit] or "?"


class SelfServiceUseCases(UseCase):
    """Self-service: changes go through the user use cases (``users``), logins
    through the platform's throttle (``throttle``)."""

    def __init__(self, core: ServiceCore, *, users: UserUseCases,
                 throttle: ThrottleUseCases) -> None:
        super().__init__(core)
        self._users = users
        self._throttle = throttle

    # -- passwords ---------------------------------------------------------------

    async def set_user_password(self, ctx: Context, tenant_name: str | None, name: str,
                                password: str | None) -> User:
        """Set (or with ``None`` remove) a user's self-service password; admins only.

        The user's open self-service sessions end: a new password is the usual
        answer to a leaked one.
        """
        if password is not None:
            rules.admin_password(password)
        username = rules.username(name)
        async with self._uow(readonly=True) as repo:
            tenant = await self._tenant(repo, tenant_name)
        target = user_target(username, tenant)
        await self._require(ctx, lambda p: permissions.can_manage_users(p, tenant.id),
                            AuditAction.USER_PASSWORD, target, tenant=tenant.slug,
                            username=username,
                            message=f"not an admin of tenant {tenant.slug!r}")
        # Hashed before the transaction: argon2 is slow on purpose, locks should not wait.
        password_hash = (await asyncio.to_thread(credential_crypto.hash_password, password)
                         if password is not None else None)
        async with self._uow() as repo:
            tenant = await self._tenant(repo, tenant.slug)
            user = await self._user(repo, tenant, username, for_update=True)
            await repo.set_user_password(user.id, password_hash)
            ended = await repo.remove_user_web_sessions(user.id)
            await self._audit(repo, ctx, AuditAction.USER_PASSWORD, target, tenant=tenant.slug,
                              username=user.username,
                              after={"password": "set" if password is not None else "removed",
                                     "sessions_ended": ended})
        return user

    async def authenticate_user(self, tenant: Tenant, name: str, password: str,
                                channel: Channel, remote_addr: str | None = None) -> Principal:
        """Check a user's password; every failure looks alike and is audited.

        A user without a password, an unknown or hidden-or-not user, a wrong
        password: the same refusal after the same argon2 work.
        """
        anonymous = Context(Principal.anonymous(), channel, remote_addr)
        try:
            username: str | None = rules.username(name)
        except InvalidInput:
            username = None
        target = f"{_label(username or name, 32)}@{tenant.slug}"
        # The platform's one throttle (service/throttle.py), as for admin logins:
        # counted before argon2, keyed on (tenant/user, address) and address.
        attempt = await self._throttle.auth_gate(
            anonymous, "user", f"{tenant.id}/{(username or name or '?').strip().lower()[:64]}",
            action=AuditAction.AUTH_LOGIN, target=target)
        found = await self._stored_password(tenant, username, password)
        stored = found[1] if found else None
        matches = await asyncio.to_thread(credential_crypto.password_matches, password or "",
                                          stored)
        if found is None or not matches:
            await self._throttle.auth_failed(attempt, AuditAction.AUTH_LOGIN, target,
                                             tenant=tenant.slug, username=username,
                                             message="wrong user name or password")
        assert found is not None and found[1] is not None
        user, password_hash = found
        principal = Principal(Role.USER, f"user:{user.username}", tenant_id=tenant.id,
                              user_id=user.id)
        new_hash = (await asyncio.to_thread(credential_crypto.hash_password, password)
                    if credential_crypto.password_needs_rehash(password_hash) else None)
        async with self._uow() as repo:
            await self._throttle.auth_passed(repo, attempt)
            if new_hash is not None:
                await repo.set_user_password(user.id, new_hash)
            await self._audit(repo, Context(principal, channel, remote_addr),
                              AuditAction.AUTH_LOGIN, user_target(user.username, tenant),
                              tenant=tenant.slug,
                              username=user.username)
        return principal

    async def _stored_password(self, tenant: Tenant, username: str | None,
                               password: str) -> tuple[User, str | None] | None:
        """The user and their password hash, or None when there is nothing to check
        (an invalid name or an oversize password are refused after the same argon2 work)."""
        if username is None or len(password or "") > MAX_PASSWORD_CHARS:
            return None
        async with self._uow(readonly=True) as repo:
            user = await repo.user(tenant.id, username, with_plan=False)
            if user is None:
                return None
            return user, await repo.user_password_hash(user.id)

    # -- the tenant's setting ----------------------------------------------------

    async def self_edit_fields(self, tenant: Tenant) -> tuple[str, ...]:
        """The profile fields this tenant's users may edit on their page."""
        async with self._uow(readonly=True) as repo:
            stored = await repo.tenant_self_edit_fields(tenant.id)
        return self_rules.stored_self_edit_fields(stored)

    async def set_self_edit_fields(self, ctx: Context, tenant_name: str | None,
                                   fields: str | list[str]) -> tuple[str, ...]:
        """Choose which profile fields the tenant's users may edit (admins of the tenant)."""
        wanted = self_rules.self_edit_fields(fields)
        async with self._uow() as repo:
            tenant = await self._tenant(repo, tenant_name)
            await self._require(ctx, lambda p: permissions.can_edit_tenant_basics(p, tenant.id),
                                AuditAction.TENANT_UPDATE, tenant.slug, tenant=tenant.slug,
                                message=f"not an admin of tenant {tenant.slug!r}")
            before = self_rules.stored_self_edit_fields(
                await repo.tenant_self_edit_fields(tenant.id))
            if before != wanted:
                await repo.set_tenant_self_edit_fields(tenant.id, list(wanted))
                await self._audit(repo, ctx, AuditAction.TENANT_UPDATE, tenant.slug,
                                  tenant=tenant.slug,
                                  before={"self_edit_fields": list(before)},
                                  after={"self_edit_fields": list(wanted)})
        return wanted

    # -- the signed-in user's own account -----------------------------------------

    async def _own(self, ctx: Context, tenant_name: str | None, name: str | None,
                   action: AuditAction) -> tuple[Tenant, User]:
        """The principal's own tenant and user, if that is what the request names.

        Anything else (another user, another tenant, a made-up name) is refused
        and audited without looking it up.
        """
        p = ctx.principal
        own: tuple[Tenant, User] | None = None
        if p.role is Role.USER and p.user_id is not None and p.tenant_id is not None:
            async with self._uow(readonly=True) as repo:
                user = await repo.user_by_id(p.user_id)
                tenant = await repo.tenant_by_id(p.tenant_id)
            if user is not None and tenant is not None and user.tenant_id == tenant.id:
                own = (tenant, user)
        named_tenant = (tenant_name or "").strip().lower()
        named_user = (name or "").strip().lower()
        names_own = own is not None and named_user == own[1].username and named_tenant in (
            own[0].slug, *own[0].domains)
        await self._require(
            ctx, lambda _p: names_own,  # ``own`` already is the principal's own account
            action, f"{_label(named_user, 32)}@{_label(named_tenant, 63)}",
            tenant=own[0].slug if own else None,
            username=own[1].username if own else None,
            message=f"{p.name} may change only their own account",
        )
        assert own is not None
        return own

    async def own_account(self, ctx: Context) -> tuple[Tenant, User, tuple[str, ...]]:
        """The signed-in user's tenant, user (with plan) and editable profile fields."""
        p = ctx.principal
        await self._require(ctx, permissions.is_signed_in_user, AuditAction.ACCOUNT_READ,
                            p.name, tenant=None, message="sign in as a user to see this page")
        assert p.user_id is not None and p.tenant_id is not None
        async with self._uow(readonly=True) as repo:
            tenant = await repo.tenant_by_id(p.tenant_id)
            brief = await repo.user_by_id(p.user_id)
            user = await repo.user(p.tenant_id, brief.username) if brief else None
            stored = await repo.tenant_self_edit_fields(p.tenant_id)
        if tenant is None or user is None:
            await self._deny(ctx, AuditAction.AUTH_SESSION, p.name, tenant=None,
                             message="this account no longer exists")
        # A status past its expiry is gone for every read, this page too.
        return tenant, expiry.live(user, self.clock()), self_rules.stored_self_edit_fields(stored)

    async def set_own_status(self, ctx: Context, tenant_name: str | None, name: str | None,
                             status: str | None, expires: Expiry | None = None) -> User:
        """Set or clear the user's own status (same rules and history as every channel).

        ``expires`` (a duration or a time, as ``user set --for/--until``)
        makes the new status expire, resolved in the tenant's time zone.
        """
        action = AuditAction.STATUS_SET if status else AuditAction.STATUS_CLEAR
        tenant, user = await self._own(ctx, tenant_name, name, action)
        return await self._users.set_status(ctx, tenant.slug, user.username, status or None,
                                     expires=expires)

    async def set_own_plan(self, ctx: Context, tenant_name: str | None, name: str | None,
                           plan: str) -> User:
        tenant, user = await self._own(ctx, tenant_name, name, AuditAction.PLAN_SET)
        return await self._users.set_plan(ctx, tenant.slug, user.username, plan)

    async def edit_own_profile(self, ctx: Context, tenant_name: str | None, name: str | None,
                               changes: dict[str, str]) -> User:
        """Change the profile fields the tenant lets its users edit, and only those."""
        tenant, user = await self._own(ctx, tenant_name, name, AuditAction.USER_UPDATE)
        values: dict[str, Any] = {}
        for field, value in changes.items():
            if field not in self_rules.PROFILE_FIELDS:
                raise InvalidInput(f"unknown profile field {_label(field, 40)!r}")
            values[field] = rules.one_line(field.replace("_", " "), value)
        target = user_target(user.username, tenant)
        async with self._uow() as repo:
            editable = self_rules.stored_self_edit_fields(
                await repo.tenant_self_edit_fields(tenant.id))
            refused = sorted(set(values) - set(editable))
            await self._require(ctx, lambda _p: not refused,  # the tenant's choice of fields
                                AuditAction.USER_UPDATE, target, tenant=tenant.slug,
                                username=user.username,
                                message=f"users of {tenant.slug} may not edit "
                                        f"{refused[0].replace('_', ' ') if refused else ''}")
            current = await repo.user(tenant.id, user.username, for_update=True)
            if current is None or current.id != user.id:
                await self._deny(ctx, AuditAction.AUTH_SESSION, target, tenant=tenant.slug,
                                 message="this account no longer exists")
            values = {k: v for k, v in values.items() if getattr(current, k) != v}
            if values:
                await repo.update_user(current.id, **values)
                updated = await repo.user(tenant.id, user.username)
                assert updated is not None
                await self._audit(repo, ctx, AuditAction.USER_UPDATE, target, tenant=tenant.slug,
                                  username=user.username, before=_profile(current),
                                  after=_profile(updated))
            else:
                updated = current
        if values:
            await self._publish(ChangeEvent("user", tenant.id, tenant.slug, user.username,
                                            data={"hidden": updated.hidden}))
        return updated
