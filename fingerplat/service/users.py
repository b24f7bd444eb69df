"""User use cases: accounts, statuses, plans, and the public directory reads."""

from __future__ import annotations

import base64
import binascii
from types import EllipsisType
from typing import Any

from fingerplat.domain import expiry, rules, visibility
from fingerplat.domain.audit_actions import AuditAction
from fingerplat.domain.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    PermissionDenied,
    UserNotFound,
)
from fingerplat.domain.expiry import Expiry
from fingerplat.domain.model import (
    ChangeEvent,
    Channel,
    Context,
    Principal,
    Role,
    StatusChange,
    Tenant,
    User,
    UserPage,
)
from fingerplat.service import permissions
from fingerplat.service.base import UseCase, user_target
from fingerplat.service.ports import Repository

MAX_PAGE = 1000
HISTORY_MAX = 100
EXPIRY_BATCH = 200

#: Who clears a status when its time comes (audit actor ``system``).
SYSTEM = Context(Principal(Role.PLATFORM_ADMIN, "system"), Channel.SYSTEM)

_PROFILE_FIELDS = ("full_name", "office", "phone", "project")


def _profile(u: User) -> dict[str, Any]:
    return {
        "full_name": u.full_name,
        "office": u.office,
        "phone": u.phone,
        "project": u.project,
        "hidden": u.hidden,
        "finger_log": u.finger_log,
    }


def encode_cursor(username: str) -> str:
    return base64.urlsafe_b64encode(username.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        return rules.username(base64.urlsafe_b64decode(padded.encode("ascii")).decode())
    except (binascii.Error, UnicodeError, ValueError, InvalidInput):
        raise InvalidInput("invalid cursor: pass the next_cursor of a previous page") from None


class UserUseCases(UseCase):
    # -- public reads ----------------------------------------------------------

    async def public_user(self, tenant: Tenant, name: str) -> User | None:
        """A visible user with plan, or None. Hidden users look exactly like unknown ones."""
        username = rules.username(name)
        if self.hot_reads is not None:
            user = await self.hot_reads.user(tenant.id, username)
        else:
            user = await self._read(lambda repo: repo.user(tenant.id, username))
        if user is None or user.hidden:
            return None
        return visibility.public_view(expiry.live(user, self.clock()), tenant.public_fields)

    async def public_history(
        self, tenant: Tenant, name: str, limit: int = 10
    ) -> list[StatusChange]:
        username = rules.username(name)
        limit = max(1, min(limit, HISTORY_MAX))
        shown = visibility.shows_history(tenant.public_fields)

        async def fetch(repo: Repository) -> list[StatusChange]:
            user = await repo.user(tenant.id, username, with_plan=False)
            if user is None or user.hidden:
                raise UserNotFound(username, tenant.slug)
            if not shown:
                return []
            return [change.public() for change in await repo.history(user.id, limit)]

        return await self._read(fetch)

    async def directory(
        self,
        tenant: Tenant,
        *,
        ctx: Context | None = None,
        limit: int = 100,
        cursor: str | None = None,
        search: str | None = None,
    ) -> UserPage:
        """The tenant's user list, ordered by name, in pages.

        Anonymous callers get visible users only, and nothing when the tenant's
        ``list_users`` is off; admins of the tenant also see hidden users.
        """
        if limit < 1 or limit > MAX_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_PAGE}")
        admin = ctx is not None and permissions.can_see_hidden(ctx.principal, tenant.id)
        if not tenant.list_users and not admin:
            raise PermissionDenied(f"tenant {tenant.slug!r} does not publish its user list")
        after = decode_cursor(cursor) if cursor else None
        if search is not None:
            search = rules.one_line("search", search, 100).lower() or None
        async with self._uow(readonly=True) as repo:
            users = await repo.list_users(
                tenant.id, include_hidden=admin, after=after, limit=limit + 1, search=search
            )
            total = await repo.count_users(tenant.id, include_hidden=admin)
        next_cursor = encode_cursor(users[limit - 1].username) if len(users) > limit else None
        now = self.clock()
        fields = None if admin else tenant.public_fields
        shown = [visibility.public_view(expiry.live(u, now), fields) for u in users[:limit]]
        return UserPage(users=shown, total=total, next_cursor=next_cursor, fields=fields)

    # -- admin reads -----------------------------------------------------------

    async def get_user(self, ctx: Context, tenant_name: str | None, name: str) -> User:
        """A user as an admin (or the user themself) sees it, hidden or not."""
        return (await self.user_view(ctx, tenant_name, name))[0]

    async def user_view(
        self, ctx: Context, tenant_name: str | None, name: str
    ) -> tuple[User, frozenset[str] | None]:
        """A user, and the fields ``ctx`` may see (None: all): the API's read.

        Admins of the tenant and the user's own token see everything; anyone
        else sees what the tenant publishes.
        """
        async with self._uow(readonly=True) as repo:
            tenant = await self._tenant(repo, tenant_name)
            user = await self._user(repo, tenant, name)
        privileged = permissions.can_write_status(ctx.principal, tenant.id, user.id)
        if user.hidden and not privileged:
            raise UserNotFound(user.username, tenant.slug)
        user = expiry.live(user, self.clock())
        if privileged:
            return user, None
        return visibility.public_view(user, tenant.public_fields), tenant.public_fields

    async def history(
        self, ctx: Context, tenant_name: str | None, name: str, limit: int = 20
    ) -> list[StatusChange]:
        limit = max(1, min(limit, HISTORY_MAX))
        async with self._uow(readonly=True) as repo:
            tenant = await self._tenant(repo, tenant_name)
            user = await self._user(repo, tenant, name)
            own = permissions.can_write_status(ctx.principal, tenant.id, user.id)
            if user.hidden and not own:
                raise UserNotFound(user.username, tenant.slug)
            if not own and not visibility.shows_history(tenant.public_fields):
                return []
            changes = await repo.history(user.id, limit)
        # Actors are for the tenant's admins and the user themself; everyone
        # else learns what changed and when, not who changed it.
        return changes if own else [change.public() for change in changes]

    # -- account management ----------------------------------------------------

    async def add_user(
        self,
        ctx: Context,
        tenant_name: str | None,
        name: str,
        *,
        full_name: str = "",
        office: str = "",
        phone: str = "",
        project: str = "",
        hidden: bool = False,
    ) -> User:
        username = rules.username(name)
        fields = {
            "full_name": rules.one_line("full name", full_name),
            "office": rules.one_line("office", office),
            "phone": rules.one_line("phone", phone),
            "project": rules.one_line("project", project),
        }
        async with self._uow() as repo:
            tenant = await self._tenant(repo, tenant_name)
            target = user_target(username, tenant)
            await self._require(ctx, lambda p: permissions.can_manage_users(p, tenant.id),
                                AuditAction.USER_CREATE, target, tenant=tenant,
                                username=username,
                                message=f"not an admin of tenant {tenant.slug!r}")
            if not await repo.lock_tenant(tenant.id, exclusive=False):
                raise NotFound(f"no such tenant: {tenant.slug!r}")
            if await repo.pseudo_user(tenant.id, username) is not None:  # issue 16
                raise Conflict(f"{username!r} is the name of a pseudo-user of tenant "
                               f"{tenant.slug!r}; remove it first (fingerplat pseudo remove)")
            user_id = await repo.add_user(
                tenant.id, self.clock(), username=username, hidden=hidden, **fields
            )
            user = await repo.user(tenant.id, username)
            assert user is not None and user.id == user_id
            await self._audit(repo, ctx, AuditAction.USER_CREATE, target, tenant=tenant,
                              username=username, after=_profile(user))
            await self._emit(repo, ChangeEvent("user", tenant.id, tenant.slug, username))
        return user

    async def edit_user(
        self,
        ctx: Context,
        tenant_name: str | None,
        name: str,
        *,
        full_name: str | None = None,
        office: str | None = None,
        phone: str | None = None,
        project: str | None = None,
        hidden: bool | None = None,
        finger_log: bool | None = None,
    ) -> User:
        changes: dict[str, Any] = {}
        if finger_log is not None:  # issue 16: the user's opt-in to "who fingered me"
            changes["finger_log"] = finger_log
        for field, value in zip(_PROFILE_FIELDS, (full_name, office, phone, project), strict=True):
            if value is not None:
                changes[field] = rules.one_line(field.replace("_", " "), value)
        if hidden is not None:
            changes["hidden"] = hidden
        username = rules.username(name)
        async with self._uow() as repo:
            tenant = await self._tenant(repo, tenant_name)
            target = user_target(username, tenant)
            # Permission first, so another tenant's admin learns nothing about its users.
            await self._require(ctx, lambda p: permissions.can_manage_users(p, tenant.id),
                                AuditAction.USER_UPDATE, target, tenant=tenant,
                                username=username,
                                message=f"not an admin of tenant {tenant.slug!r}")
            user = await self._user(repo, tenant, username, for_update=True)
            if changes:
                await repo.update_user(user.id, **changes)
            updated = await repo.user(tenant.id, user.username)
            assert updated is not None
            changed = _profile(updated) != _profile(user)
            if changed:
                await self._audit(repo, ctx, AuditAction.USER_UPDATE, target, tenant=tenant,
                                  username=user.username, before=_profile(user),
                                  after=_profile(updated))
                await self._emit(repo, ChangeEvent("user", tenant.id, tenant.slug,
                                                   user.username,
                                                   data={"hidden": updated.hidden}))
        return updated

    async def remove_user(self, ctx: Context, tenant_name: str | None, name: str) -> None:
        username = rules.username(name)
        async with self._uow() as repo:
            tenant = await self._tenant(repo, tenant_name)
            target = user_target(username, tenant)
            await self._require(ctx, lambda p: permissions.can_manage_users(p, tenant.id),
                                AuditAction.USER_REMOVE, target, tenant=tenant,
                                username=username,
                                message=f"not an admin of tenant {tenant.slug!r}")
            user = await self._user(repo, tenant, username, for_update=True)
            await repo.remove_user(user.id)
            await self._audit(repo, ctx, AuditAction.USER_REMOVE, target, tenant=tenant,
                              username=user.username,
                              before={**_profile(user), "status": user.status})
            await self._emit(repo, ChangeEvent("user", tenant.id, tenant.slug, user.username,
                                               data={"removed": True}))

    # -- status and plan -------------------------------------------------------

    async def set_status(
        self, ctx: Context, tenant_name: str | None, name: str, status: str | None,
        *, if_status: str | EllipsisType | None = ..., expires: Expiry | None = None,
    ) -> User:
        """Set (or with ``None`` clear) a user's status, keeping the history.

        ``if_status`` makes it a compare-and-set, so two scripts do not
        overwrite each other unknowingly: the change applies only when the
        current status is exactly that text (``None``: no status), checked
        on the locked row; otherwise :class:`Conflict`.

        ``expires`` gives the new status an expiry (resolved in the tenant's
        time zone): from then on every read shows no status.
        """
        text = rules.status(status) if status is not None else None
        action = AuditAction.STATUS_SET if text is not None else AuditAction.STATUS_CLEAR
        if expires is not None and text is None:
            raise InvalidInput("only a status being set can have an expiry")
        async with self._uow() as repo:
            tenant, user = await self._writable_user(repo, ctx, tenant_name, name, action,
                                                     "status")
            now = self.clock()
            user = expiry.live(user, now)
            if if_status is not ... and user.status != if_status:
                raise Conflict(f"the status of {user.username} is no longer the expected one: "
                               "it changed meanwhile; read it again")
            deadline = expires.resolve(now, tenant.timezone) if expires is not None else None
            target = user_target(user.username, tenant)
            await repo.set_status(user.id, text, now, ctx.principal.name[:200], ctx.channel.value,
                                  expires_at=deadline)
            after: dict[str, Any] = {"status": text}
            if deadline is not None:
                after["expires_at"] = deadline.isoformat()
            await self._audit(repo, ctx, action, target, tenant=tenant,
                              username=user.username, before={"status": user.status},
                              after=after)
            updated = await repo.user(tenant.id, user.username)
            assert updated is not None
            await self._emit(repo, ChangeEvent("status", tenant.id, tenant.slug,
                                               user.username, status=text,
                                               data={"hidden": user.hidden}))
        return updated

    async def _writable_user(
        self,
        repo: Repository,
        ctx: Context,
        tenant_name: str | None,
        name: str,
        action: AuditAction,
        what: str,
    ) -> tuple[Tenant, User]:
        """The tenant and the locked user row whose status or plan ``ctx`` may change.

        Admins of the tenant learn that a user does not exist; anyone else is
        refused alike for a missing, hidden or foreign user, so a user token
        cannot probe for names.
        """
        tenant = await self._tenant(repo, tenant_name)
        username = rules.username(name)
        user = await repo.user(tenant.id, username, for_update=True)
        p = ctx.principal
        if user is None and permissions.can_manage_users(p, tenant.id):
            raise UserNotFound(username, tenant.slug)
        await self._require(
            ctx, lambda p: user is not None and permissions.can_write_status(p, tenant.id, user.id),
            action, user_target(username, tenant), tenant=tenant, username=username,
            message=f"{p.name} may not change the {what} of {username}")
        assert user is not None
        return tenant, user

    async def clear_status(self, ctx: Context, tenant_name: str | None, name: str) -> User:
        return await self.set_status(ctx, tenant_name, name, None)

    async def set_expiry(
        self, ctx: Context, tenant_name: str | None, name: str, expires: Expiry | None
    ) -> User:
        """Give the user's current status an expiry (None: it no longer expires)."""
        async with self._uow() as repo:
            tenant, user = await self._writable_user(repo, ctx, tenant_name, name,
                                                     AuditAction.STATUS_EXPIRY, "status")
            now = self.clock()
            user = expiry.live(user, now)
            if user.status is None:
                raise InvalidInput(f"{user.username} has no status to expire")
            deadline = expires.resolve(now, tenant.timezone) if expires is not None else None
            await repo.set_status_expiry(user.id, deadline)
            await self._audit(
                repo, ctx, AuditAction.STATUS_EXPIRY, user_target(user.username, tenant),
                tenant=tenant, username=user.username,
                before={"status": user.status, "expires_at": _iso(user.status_expires_at)},
                after={"status": user.status, "expires_at": _iso(deadline)},
            )
            updated = await repo.user(tenant.id, user.username)
            assert updated is not None
            await self._emit(repo, ChangeEvent("status", tenant.id, tenant.slug, user.username,
                                               status=user.status,
                                               data={"hidden": user.hidden}))
        return updated

    async def expire_due(self, limit: int = EXPIRY_BATCH) -> int:
        """Clear the statuses whose time has come; how many this call cleared.

        Reads are already right without this (they compare every expiry with
        the clock); this writes what the history and the audit trail keep:
        a "cleared" history entry and one ``status.expire`` event by
        ``system``. Each row is cleared by a compare-and-set on its
        deadline, so when several nodes sweep at once exactly one of them
        clears it and writes the event.
        """
        now = self.clock()
        async with self._uow(readonly=True) as repo:
            due = await repo.due_expiries(now, limit)
        cleared = 0
        for user_id, deadline in due:
            event = await self._expire_one(user_id, deadline)
            if event is not None:
                cleared += 1
        return cleared

    async def _expire_one(self, user_id: int, deadline: Any) -> ChangeEvent | None:
        async with self._uow() as repo:
            user = await repo.user_by_id(user_id)
            if user is None or user.status_expires_at != deadline:
                return None
            tenant = await repo.tenant_by_id(user.tenant_id)
            if tenant is None or not await repo.expire_status(user_id, deadline):
                return None
            await repo.add_status_history([(user_id, None)], deadline, SYSTEM.principal.name,
                                          SYSTEM.channel.value)
            await self._audit(repo, SYSTEM, AuditAction.STATUS_EXPIRE,
                              user_target(user.username, tenant),
                              tenant=tenant, username=user.username,
                              before={"status": user.status, "expires_at": _iso(deadline)},
                              after={"status": None})
            event = ChangeEvent("status", tenant.id, tenant.slug, user.username, status=None,
                                data={"hidden": user.hidden})
            # Inside the unit of work: the NOTIFY goes out exactly if the clear commits.
            await self._emit(repo, event)
        return event

    async def set_plan(self, ctx: Context, tenant_name: str | None, name: str, plan: str) -> User:
        text = rules.plan(plan)
        async with self._uow() as repo:
            tenant, user = await self._writable_user(repo, ctx, tenant_name, name,
                                                     AuditAction.PLAN_SET, "plan")
            target = user_target(user.username, tenant)
            await repo.set_plan(user.id, text, self.clock())
            await self._audit(repo, ctx, AuditAction.PLAN_SET, target, tenant=tenant,
                              username=user.username,
                              before={"bytes": len(user.plan.encode())},
                              after={"bytes": len(text.encode())})
            updated = await repo.user(tenant.id, user.username)
            assert updated is not None
            await self._emit(repo, ChangeEvent("plan", tenant.id, tenant.slug, user.username))
        return updated


def _iso(moment: Any) -> str | None:
    return moment.isoformat() if moment is not None else None
