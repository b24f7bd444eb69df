"""Tokens and admin accounts: issuing, revoking, and turning credentials into principals."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

from fingerplat.domain import rules
from fingerplat.domain.audit_actions import AuditAction
from fingerplat.domain.errors import AuthenticationFailed, InvalidInput, NotFound
from fingerplat.domain.model import (
    Admin,
    ChangeEvent,
    Channel,
    Context,
    IssuedToken,
    Principal,
    Role,
    Token,
    TokenScope,
)
from fingerplat.service import credential_crypto, permissions
from fingerplat.service.base import ServiceCore, UseCase
from fingerplat.service.ports import Repository
from fingerplat.service.throttle import AuthAttempt, ThrottleUseCases

MAX_TOKEN_DAYS = 3650
# Longer passwords are refused without hashing them (admin_password allows 1024).
MAX_PASSWORD_CHARS = 1024
# last_used_at is refreshed at most this often, so a busy script does not
# turn every authenticated request into a write.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def token_label(token: Token) -> str:
    if token.scope is TokenScope.USER:
        return f"token:{token.id}({token.username}@{token.tenant_slug})"
    if token.scope is TokenScope.TENANT:
        return f"token:{token.id}(admin@{token.tenant_slug})"
    return f"token:{token.id}(platform)"


def _token_request(scope: TokenScope, username: str | None,
                   expires_days: int | None) -> str | None:
    """Check a token request's input; the user name of a user token (else None)."""
    if expires_days is not None and not 1 <= expires_days <= MAX_TOKEN_DAYS:
        raise InvalidInput(f"--expires must be between 1 and {MAX_TOKEN_DAYS} days")
    if scope is not TokenScope.USER:
        return None
    if not username:
        raise InvalidInput("a user token needs a user name")
    return rules.username(username)


class CredentialUseCases(UseCase):
    """Tokens, admin accounts, and turning credentials into principals.

    Every check of a secret goes through the platform's one throttle
    (``throttle``, service/throttle.py), held here, not inherited.
    """

    def __init__(self, core: ServiceCore, *, throttle: ThrottleUseCases) -> None:
        super().__init__(core)
        self._throttle = throttle

    # -- tokens ----------------------------------------------------------------

    async def create_token(
        self,
        ctx: Context,
        scope: TokenScope,
        *,
        tenant_name: str | None = None,
        username: str | None = None,
        expires_days: int | None = None,
    ) -> IssuedToken:
        name = _token_request(scope, username, expires_days)
        async with self._uow() as repo:
            tenant = await self._tenant(repo, tenant_name)
            tenant_id = None if scope is TokenScope.PLATFORM else tenant.id
            slug = tenant.slug if tenant_id else None
            target = f"{name}@{tenant.slug}" if name else (f"tenant:{slug}" if slug else "platform")
            # Permission before the user lookup: another tenant's admin learns no names.
            await self._require(ctx, lambda p: permissions.can_create_token(p, scope, tenant_id),
                                AuditAction.TOKEN_CREATE, target, tenant=slug, username=name,
                                message=f"{ctx.principal.name} may not create {scope.value} "
                                        "tokens" + (f" for tenant {slug!r}" if slug else ""))
            # Tenant before user, the order remove_tenant locks in: no deadlock.
            if tenant_id is not None and not await repo.lock_tenant(tenant.id, exclusive=False):
                raise NotFound(f"no such tenant: {tenant.slug!r}")
            user = await self._user(repo, tenant, name, for_update=True) if name else None
            secret = credential_crypto.new_token_secret()
            now = self.clock()
            token_id = await repo.add_token(
                scope=scope.value, tenant_id=tenant_id, user_id=user.id if user else None,
                secret_hash=credential_crypto.hash_token_secret(secret), created_at=now,
                created_by=ctx.principal.name[:200],
                expires_at=now + timedelta(days=expires_days) if expires_days else None,
            )
            found = await repo.token(token_id)
            assert found is not None
            token = found[0]
            expires = token.expires_at.isoformat() if token.expires_at else None
            await self._audit(repo, ctx, AuditAction.TOKEN_CREATE, target, tenant=slug,
                              username=user.username if user else None,
                              after={"id": token_id, "scope": scope.value, "expires_at": expires})
        return IssuedToken(token=token, secret=credential_crypto.format_token(token_id, secret))

    async def list_tokens(self, ctx: Context, tenant_name: str | None = None,
                          *, all_tenants: bool = False) -> list[Token]:
        if all_tenants:
            await self._require(ctx, permissions.is_platform_admin,
                                AuditAction.TOKEN_LIST, "tokens:all", tenant=None,
                                message="only platform admins may list every token")
            async with self._uow(readonly=True) as repo:
                return await repo.list_tokens(None)
        async with self._uow(readonly=True) as repo:
            tenant = await self._tenant(repo, tenant_name)
            await self._require(ctx, lambda p: permissions.can_manage_tokens(p, tenant.id),
                                AuditAction.TOKEN_LIST, f"tenant:{tenant.slug}",
                                tenant=tenant.slug,
                                message=f"not an admin of tenant {tenant.slug!r}")
            return await repo.list_tokens(tenant.id)

    async def revoke_token(self, ctx: Context, token_id: int) -> Token:
        async with self._uow() as repo:
            found = await repo.token(token_id)
            if found is None:
                raise NotFound(f"no such token: {token_id}")
            token = found[0]
            target = f"token:{token.id}"
            await self._require(ctx, lambda p: permissions.can_manage_tokens(p, token.tenant_id),
                                AuditAction.TOKEN_REVOKE, target, tenant=token.tenant_slug,
                                username=token.username,
                                message=f"{ctx.principal.name} may not revoke token {token.id}")
            if token.revoked_at is not None:
                return token
            await repo.update_token(token.id, revoked_at=self.clock())
            await self._audit(repo, ctx, AuditAction.TOKEN_REVOKE, target, tenant=token.tenant_slug,
                              tenant_id=token.tenant_id, username=token.username,
                              before={"revoked": False}, after={"revoked": True})
            found = await repo.token(token.id)
            assert found is not None
            await self._emit(repo, ChangeEvent("token", token.tenant_id, token.tenant_slug,
                                               data={"id": token.id}))
        return found[0]

    async def authenticate_token(
        self, presented: str, channel: Channel, remote_addr: str | None = None
    ) -> Principal:
        """Turn a presented token into a principal, or audit the failure and refuse.

        The throttle (service/throttle.py) sees the attempt first: an address
        or a (token, address) pair over its limit is refused unchecked with
        :class:`TooManyAttempts`, and failures are audited sparingly.
        """
        anonymous = Context(Principal.anonymous(), channel, remote_addr)
        parsed = credential_crypto.parse_token(presented or "")
        target = f"token:{parsed[0]}" if parsed else "token"
        account = str(parsed[0]) if parsed else None
        async with self._uow(readonly=True) as repo:
            clean = await self._throttle.throttle_clean(
                repo, self._throttle.throttle_keys(anonymous, "token", account))
            found = await repo.token(parsed[0]) if parsed else None
        attempt = await self._throttle.auth_gate(anonymous, "token", account,
                                                 action=AuditAction.AUTH_TOKEN, target=target,
                                                 clean=clean)
        if parsed is None:
            await self._throttle.auth_failed(attempt, AuditAction.AUTH_TOKEN, target, tenant=None,
                                             message="invalid token")
        _, secret = parsed
        # Hash and compare even when the id is unknown, so timing says nothing.
        stored_hash = found[1] if found else "0" * 64
        matches = credential_crypto.token_secret_matches(secret, stored_hash) and found is not None
        if not matches or found is None:
            await self._throttle.auth_failed(attempt, AuditAction.AUTH_TOKEN, target, tenant=None,
                                             message="invalid token")
        token = found[0]
        now = self.clock()
        problem = self._token_problem(token, now)
        if problem is not None:
            await self._throttle.auth_failed(attempt, AuditAction.AUTH_TOKEN, target,
                                             tenant=token.tenant_slug, message=problem)
        refresh = token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION
        if refresh or attempt.counted:
            async with self._uow() as repo:
                await self._throttle.auth_passed(repo, attempt)
                if refresh:
                    await repo.update_token(token.id, last_used_at=now)
        return self._token_principal(token)

    @staticmethod
    def _token_problem(token: Token, now: datetime) -> str | None:
        """Why a token whose secret matched may still not be used (None: it may)."""
        if token.revoked_at is not None:
            return "token revoked"
        if token.expires_at is not None and token.expires_at <= now:
            return "token expired"
        return None

    @staticmethod
    def _token_principal(token: Token) -> Principal:
        role = {
            TokenScope.USER: Role.USER,
            TokenScope.TENANT: Role.TENANT_ADMIN,
            TokenScope.PLATFORM: Role.PLATFORM_ADMIN,
        }[token.scope]
        return Principal(role, token_label(token), tenant_id=token.tenant_id,
                         user_id=token.user_id, token_id=token.id)

    async def check_principal(self, ctx: Context) -> None:
        """Refuse (and audit) a principal whose credentials no longer hold.

        A long-lived session (the setter) authenticates once and then acts for
        hours; it asks here before every command, so a token revoked or
        expired since, an admin account, user or tenant removed since (or
        removed and added again under the same name: ids are compared, not
        names) stops it at its next command.
        """
        principal = ctx.principal
        if principal.role is Role.ANONYMOUS or principal.name.startswith("cli:"):
            return
        problem: str | None = None
        now = self.clock()
        if principal.admin_id is not None:
            if not await self.admin_session_valid(principal):
                problem = "admin account removed"
        else:
            async with self._uow(readonly=True) as repo:
                problem = await self._principal_problem(repo, principal, now)
        if problem is not None:
            await self._deny(ctx, AuditAction.AUTH_SESSION, principal.name, tenant=None,
                             message=f"{problem} since this session authenticated",
                             error=AuthenticationFailed)

    async def local_principal(
        self, tenant_name: str | None, os_user: str, uid: int, remote_addr: str | None = None
    ) -> Principal:
        """The principal for a local OS user proven by the kernel (UNIX peer credentials).

        The caller has already checked the credentials (SO_PEERCRED), so no
        secret is needed: uid 0 is an admin of ``tenant_name`` (``unix:root``);
        anyone else is the user of the same name there (``unix:<name>``), who
        may change only their own status. A local user without an account is
        refused and the attempt audited.
        """
        async with self._uow(readonly=True) as repo:
            tenant = await self._tenant(repo, tenant_name)
            if uid == 0:
                return Principal(Role.TENANT_ADMIN, "unix:root", tenant_id=tenant.id)
            try:
                username = rules.username(os_user)
            except InvalidInput:
                user = None
            else:
                user = await repo.user(tenant.id, username, with_plan=False)
        label = f"unix:{os_user}"[:100]
        if user is None:
            anonymous = Context(Principal(Role.ANONYMOUS, label), Channel.SETTER, remote_addr)
            await self._deny(anonymous, AuditAction.AUTH_LOCAL, label, tenant=tenant.slug,
                             message=f"local user {os_user[:64]!r} has no account in tenant "
                                     f"{tenant.slug!r}", error=AuthenticationFailed)
        return Principal(Role.USER, f"unix:{user.username}", tenant_id=tenant.id,
                         user_id=user.id)

    # -- admin accounts --------------------------------------------------------

    async def add_admin(
        self, ctx: Context, name: str, password: str, *, tenant_name: str | None = None
    ) -> Admin:
        admin_name = rules.admin_name(name)
        rules.admin_password(password)
        await self._require(ctx, permissions.can_manage_admins,
                            AuditAction.ADMIN_CREATE, f"admin:{admin_name}",
                            tenant=tenant_name[:63] if tenant_name else None,
                            message="only platform admins may create admin accounts")
        # Hashed before the transaction: argon2 is slow on purpose, locks should not wait.
        password_hash = await asyncio.to_thread(credential_crypto.hash_password, password)
        async with self._uow() as repo:
            tenant = await self._tenant(repo, tenant_name) if tenant_name is not None else None
            if tenant is not None and not await repo.lock_tenant(tenant.id, exclusive=False):
                raise NotFound(f"no such tenant: {tenant.slug!r}")
            admin_id = await repo.add_admin(admin_name, password_hash,
                                            tenant.id if tenant else None, self.clock())
            await self._audit(repo, ctx, AuditAction.ADMIN_CREATE, f"admin:{admin_name}",
                              tenant=tenant.slug if tenant else None,
                              after={"id": admin_id,
                                     "tenant": tenant.slug if tenant else None})
            found = await repo.admin(admin_name)
            assert found is not None
        return found[0]

    async def list_admins(self, ctx: Context) -> list[Admin]:
        await self._require(ctx, permissions.can_manage_admins,
                            AuditAction.ADMIN_LIST, "admins", tenant=None,
                            message="only platform admins may list admin accounts")
        async with self._uow(readonly=True) as repo:
            return await repo.list_admins()

    async def remove_admin(self, ctx: Context, name: str) -> None:
        admin_name = rules.admin_name(name)
        await self._require(ctx, permissions.can_manage_admins,
                            AuditAction.ADMIN_REMOVE, f"admin:{admin_name}", tenant=None,
                            message="only platform admins may remove admin accounts")
        async with self._uow() as repo:
            found = await repo.admin(admin_name)
            if found is None:
                raise NotFound(f"no such admin: {admin_name!r}")
            await repo.remove_admin(found[0].id)
            await self._audit(repo, ctx, AuditAction.ADMIN_REMOVE, f"admin:{admin_name}",
                              tenant=found[0].tenant_slug, before={"id": found[0].id})

    async def admin_session_valid(self, principal: Principal) -> bool:
        """Whether the admin account behind a logged-in web session still exists as it was.

        The admin UI asks on every request, so removing an admin (from any
        channel or node) ends their sessions at once instead of at expiry.
        """
        if principal.admin_id is None or not principal.name.startswith("admin:"):
            return False
        async with self._uow(readonly=True) as repo:
            found = await repo.admin(principal.name.removeprefix("admin:"))
        return (found is not None and found[0].id == principal.admin_id
                and found[0].tenant_id == principal.tenant_id)

    async def _principal_problem(
        self, repo: Repository, principal: Principal, now: datetime
    ) -> str | None:
        if principal.token_id is not None:
            found = await repo.token(principal.token_id)
            if found is None:
                return "token no longer exists"
            token = found[0]
            problem = self._token_problem(token, now)
            if problem is None and (token.user_id != principal.user_id
                                    or token.tenant_id != principal.tenant_id):
                problem = "token no longer names the same user"
            return problem
        if principal.user_id is not None:
            user = await repo.user_by_id(principal.user_id)
            if user is None or user.tenant_id != principal.tenant_id:
                return "user removed"
            return None
        if principal.tenant_id is not None and await repo.tenant_by_id(
                principal.tenant_id) is None:
            return "tenant removed"
        return None

    async def authenticate_admin(
        self, name: str, password: str, channel: Channel, remote_addr: str | None = None
    ) -> Principal:
        """Check an admin's password (argon2id); failures are audited and look alike.

        The throttle counts the attempt before argon2 runs, keyed on (name,
        address) and on the address: twenty parallel guesses get about five
        checks, and nobody elsewhere is locked out by them.
        """
        anonymous = Context(Principal.anonymous(), channel, remote_addr)
        try:
            admin_name = rules.admin_name(name)
        except InvalidInput:
            admin_name = None
        account = admin_name or (name or "").strip().lower()[:64] or "?"
        target = f"admin:{(admin_name or '?')[:64]}"
        attempt = await self._throttle.auth_gate(anonymous, "admin", account,
                                                 action=AuditAction.AUTH_LOGIN, target=target)
        found = None
        if admin_name is not None and len(password or "") <= MAX_PASSWORD_CHARS:
            async with self._uow(readonly=True) as repo:
                found = await repo.admin(admin_name)
        stored = found[1] if found else None
        # argon2 takes about half a second of CPU on purpose: run it in a thread so
        # a login (or a flood of them) does not stall every listener's event loop.
        matches = await asyncio.to_thread(credential_crypto.password_matches, password or "",
                                          stored)
        if found is None or not matches:
            await self._throttle.auth_failed(attempt, AuditAction.AUTH_LOGIN, target,
                                             tenant=found[0].tenant_slug if found else None,
                                             message="wrong admin name or password")
        return await self._admin_signed_in(attempt, *found, password)

    async def _admin_signed_in(self, attempt: AuthAttempt, admin: Admin, password_hash: str,
                               password: str) -> Principal:
        """The password was right: give the throttle's slot back, rehash if due, audit."""
        new_hash = (
            await asyncio.to_thread(credential_crypto.hash_password, password)
            if credential_crypto.password_needs_rehash(password_hash) else None
        )
        role = Role.TENANT_ADMIN if admin.tenant_id is not None else Role.PLATFORM_ADMIN
        principal = Principal(role, f"admin:{admin.name}", tenant_id=admin.tenant_id,
                              admin_id=admin.id)
        async with self._uow() as repo:
            await self._throttle.auth_passed(repo, attempt)
            if new_hash is not None:  # stronger parameters since the hash was made
                await repo.update_admin_password(admin.id, new_hash)
            await self._audit(repo, replace(attempt.ctx, principal=principal),
                              AuditAction.AUTH_LOGIN, f"admin:{admin.name}",
                              tenant=admin.tenant_slug)
        return principal
