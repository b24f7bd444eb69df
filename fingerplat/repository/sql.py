"""SQL queries over the schema, returning domain types.

Every method is one or two parameterised statements on the connection of the
current unit of work; rules (who may, what is valid) live in the service.
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import JSON, Table, and_, bindparam, delete, func, insert, select, update
from sqlalchemy import text as sql_text
from sqlalchemy.engine import RowMapping
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from fingerplat.domain import json_text
from fingerplat.domain.audit_chain import BatchFields, BatchRow, ChainHead, StoredEvent
from fingerplat.domain.errors import Conflict
from fingerplat.domain.imports import StoredUser
from fingerplat.domain.model import (
    Admin,
    AuditEvent,
    AuditQuery,
    StatusChange,
    Tenant,
    Token,
    TokenScope,
    User,
)
from fingerplat.domain.visibility import network_policy
from fingerplat.repository import audit_store
from fingerplat.repository.pseudo_and_log import PseudoUserAndFingerLogQueries
from fingerplat.repository.schema import (
    admins,
    api_tokens,
    audit_events,
    plans,
    status_history,
    tenant_domains,
    tenants,
    users,
)
from fingerplat.repository.throttle import ThrottleRows
from fingerplat.repository.web_sessions import WebSessionQueries

_USER_COLUMNS = (
    users.c.id,
    users.c.tenant_id,
    users.c.username,
    users.c.full_name,
    users.c.office,
    users.c.phone,
    users.c.project,
    users.c.hidden,
    users.c.status,
    users.c.status_set_at,
    users.c.created_at,
    users.c.finger_log,  # issue 16
    users.c.status_expires_at,
)

# The public hot-path reads, built once. Building a select() on every call
# cost more CPU than PostgreSQL spends answering it (about 0.35 ms a read);
# executing a prebuilt statement skips that, and the values still travel as
# bound parameters.
_USER_BY_NAME = select(*_USER_COLUMNS).where(
    users.c.tenant_id == bindparam("tenant_id"), users.c.username == bindparam("username")
)
_USER_WITH_PLAN_BY_NAME = (
    select(*_USER_COLUMNS, plans.c.text.label("plan"))
    .select_from(users.outerjoin(plans, plans.c.user_id == users.c.id))
    .where(users.c.tenant_id == bindparam("tenant_id"), users.c.username == bindparam("username"))
)
_USER_WITH_PLAN_BY_NAME_PAGE = (
    select(*_USER_COLUMNS, plans.c.text.label("plan"))
    .select_from(users.outerjoin(plans, plans.c.user_id == users.c.id))
    .where(users.c.tenant_id == bindparam("tenant_id"), users.c.hidden.is_(False),
           users.c.username > bindparam("after"))
    .order_by(users.c.username)
    .limit(bindparam("limit"))
)
_USER_STATEMENTS = {  # (with_plan, for_update) -> statement
    (True, False): _USER_WITH_PLAN_BY_NAME,
    (False, False): _USER_BY_NAME,
    (True, True): _USER_WITH_PLAN_BY_NAME.with_for_update(of=users),
    (False, True): _USER_BY_NAME.with_for_update(of=users),
}
_RECENT_HISTORY = (
    select(status_history)
    .where(status_history.c.user_id == bindparam("user_id"))
    .order_by(status_history.c.id.desc())
    .limit(bindparam("limit"))
)


def _user(row: RowMapping, plan: str = "") -> User:
    return User(
        id=row["id"],
        tenant_id=row["tenant_id"],
        username=row["username"],
        full_name=row["full_name"],
        office=row["office"],
        phone=row["phone"],
        project=row["project"],
        hidden=row["hidden"],
        status=row["status"],
        status_set_at=row["status_set_at"],
        plan=plan,
        created_at=row["created_at"],
        finger_log=row["finger_log"],
        status_expires_at=row["status_expires_at"],
    )


def _token(row: RowMapping) -> Token:
    return Token(
        id=row["id"],
        scope=TokenScope(row["scope"]),
        tenant_id=row["tenant_id"],
        user_id=row["user_id"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
        tenant_slug=row.get("tenant_slug"),
        username=row.get("username"),
    )


# Columns of a new user as the importer hands them over (tenant and time aside).
_NEW_USER_FIELDS = ("username", "full_name", "office", "phone", "project", "hidden", "status",
                    "status_set_at")
# Users.users_in_range on PostgreSQL, sent to asyncpg directly (the columns of StoredUser).
_USERS_IN_RANGE = (
    "SELECT u.id, u.username, u.full_name, u.office, u.phone, u.project, u.hidden, u.status, "
    "p.text FROM users AS u LEFT OUTER JOIN plans AS p ON p.user_id = u.id "
    "WHERE u.tenant_id = $1 AND u.username >= $2 AND u.username <= $3"
)
_AUDIT_FIELDS = ("at", "tenant", "actor", "channel", "action", "target", "username", "outcome",
                 "before", "after", "remote_addr", "detail")
_CHAINED_AUDIT_FIELDS = ("id", *_AUDIT_FIELDS, "tenant_id", "prev_hash", "hash")


# json.dumps with its default settings (the engine's serializer, so the text is
# the same as SQLAlchemy writes), the encoder built once: an import writes one
# or two JSON values per changed user.
_json_text = json_text.reusable_encoder()


def _bind_processor(type_: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """The bind processor of a column type, with the faster JSON text for JSON."""
    if isinstance(type_, JSON):
        return _json_text
    return type_.dialect_impl(dialect).bind_processor(dialect)  # type: ignore[no-any-return]


def _processed(values: Sequence[Any], proc: Any) -> list[Any]:
    """Apply a bind processor to a column of values, once per distinct object.

    A batch shares one timestamp object across its rows, so the formatting
    (SQLite stores text) runs once instead of once per row.
    """
    out: list[Any] = []
    last_in: Any = object()
    last_out: Any = None
    for value in values:
        if value is None:
            out.append(None)
        elif value is last_in:
            out.append(last_out)
        else:
            last_in, last_out = value, proc(value)
            out.append(last_out)
    return out


def _tenant(row: RowMapping, domains: tuple[str, ...]) -> Tenant:
    return Tenant(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        list_users=row["list_users"],
        forwarding=row["forwarding"],
        is_default=row["is_default"],
        domains=domains,
        created_at=row["created_at"],
        finger_log=row["finger_log"],
        timezone=row["timezone"] or "UTC",
        public_fields=(None if row["public_fields"] is None
                       else frozenset(row["public_fields"])),
        trusted_networks=tuple(row["trusted_networks"] or ()),
        rejected_networks=tuple(row["rejected_networks"] or ()),
        networks=network_policy(row["trusted_networks"], row["rejected_networks"]),
    )


class Repository(PseudoUserAndFingerLogQueries, WebSessionQueries):
    """All SQL of fingerplat, bound to one connection (one transaction)."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn
        # Change events of this transaction, (event, already NOTIFYed), for the
        # service to publish in-process once it has committed.
        self.after_commit: list[tuple[Any, bool]] = []

    @property
    def notifies_at_commit(self) -> bool:
        """Whether a :meth:`notify` here is delivered at this transaction's commit."""
        return self.conn.dialect.name == "postgresql"

    @property
    def throttle(self) -> ThrottleRows:
        """The authentication throttle's counters (repository/throttle.py)."""
        return ThrottleRows(self.conn)

    async def _insert(self, stmt: Any) -> int:
        try:
            result = await self.conn.execute(stmt)
        except IntegrityError as exc:
            raise Conflict("that name or domain is already taken") from exc
        return int(result.inserted_primary_key[0])

    # -- tenants ---------------------------------------------------------------

    async def _tenant_from_row(self, row: RowMapping) -> Tenant:
        domains = await self.conn.execute(
            select(tenant_domains.c.domain)
            .where(tenant_domains.c.tenant_id == row["id"])
            .order_by(tenant_domains.c.domain)
        )
        return _tenant(row, tuple(domains.scalars()))

    async def tenants_with_domains(self) -> list[Tenant]:
        """Every tenant with its domains, in two statements (warming 10,000 tenants:
        :meth:`list_tenants` reads the domains of each tenant apart)."""
        domains: dict[int, list[str]] = {}
        for tenant_id, domain in await self.conn.execute(
                select(tenant_domains.c.tenant_id, tenant_domains.c.domain)
                .order_by(tenant_domains.c.tenant_id, tenant_domains.c.domain)):
            domains.setdefault(int(tenant_id), []).append(domain)
        rows = (await self.conn.execute(select(tenants).order_by(tenants.c.id))).mappings()
        return [_tenant(r, tuple(domains.get(int(r["id"]), ()))) for r in rows]

    async def tenant_by_slug(self, slug: str) -> Tenant | None:
        row = (await self.conn.execute(select(tenants).where(tenants.c.slug == slug))).mappings()
        found = row.first()
        return await self._tenant_from_row(found) if found else None

    async def tenant_by_id(self, tenant_id: int) -> Tenant | None:
        rows = await self.conn.execute(select(tenants).where(tenants.c.id == tenant_id))
        found = rows.mappings().first()
        return await self._tenant_from_row(found) if found else None

    async def tenant_by_domain(self, domain: str) -> Tenant | None:
        rows = await self.conn.execute(
            select(tenants)
            .join(tenant_domains, tenant_domains.c.tenant_id == tenants.c.id)
            .where(tenant_domains.c.domain == domain)
        )
        found = rows.mappings().first()
        return await self._tenant_from_row(found) if found else None

    async def default_tenant(self) -> Tenant | None:
        rows = await self.conn.execute(select(tenants).where(tenants.c.is_default.is_(True)))
        found = rows.mappings().first()
        return await self._tenant_from_row(found) if found else None

    async def list_tenants(self) -> list[Tenant]:
        rows = (await self.conn.execute(select(tenants).order_by(tenants.c.slug))).mappings().all()
        return [await self._tenant_from_row(r) for r in rows]

    async def lock_tenant(self, tenant_id: int, *, exclusive: bool = True) -> bool:
        """Lock a tenant row until the commit (PostgreSQL); False when it is gone.

        Exclusive for changes to the tenant itself; ``exclusive=False`` takes a
        key-share lock, enough to keep the tenant from being removed while a
        user is added to it, without serialising those additions.
        """
        stmt = select(tenants.c.id).where(tenants.c.id == tenant_id)
        stmt = stmt.with_for_update() if exclusive else stmt.with_for_update(
            read=True, key_share=True
        )
        return (await self.conn.execute(stmt)).first() is not None

    async def add_tenant(self, slug: str, name: str, now: datetime) -> int:
        return await self._insert(
            insert(tenants).values(
                slug=slug, name=name, list_users=True, forwarding=False, is_default=False,
                created_at=now,
            )
        )

    async def update_tenant(self, tenant_id: int, **values: Any) -> None:
        await self.conn.execute(update(tenants).where(tenants.c.id == tenant_id).values(**values))

    async def add_domain(self, tenant_id: int, domain: str) -> None:
        try:
            await self.conn.execute(
                insert(tenant_domains).values(tenant_id=tenant_id, domain=domain)
            )
        except IntegrityError as exc:
            raise Conflict(f"domain {domain} already belongs to a tenant") from exc

    async def remove_domain(self, tenant_id: int, domain: str) -> bool:
        result = await self.conn.execute(
            delete(tenant_domains).where(
                and_(tenant_domains.c.tenant_id == tenant_id, tenant_domains.c.domain == domain)
            )
        )
        return result.rowcount > 0

    async def remove_tenant(self, tenant_id: int) -> None:
        # Explicit child deletes: SQLite only cascades with foreign_keys on, and the
        # order keeps PostgreSQL from checking constraints mid-way.
        user_ids = select(users.c.id).where(users.c.tenant_id == tenant_id).scalar_subquery()
        await self.conn.execute(delete(api_tokens).where(api_tokens.c.tenant_id == tenant_id))
        await self.conn.execute(delete(api_tokens).where(api_tokens.c.user_id.in_(user_ids)))
        await self.conn.execute(
            delete(status_history).where(status_history.c.user_id.in_(user_ids))
        )
        await self.conn.execute(delete(plans).where(plans.c.user_id.in_(user_ids)))
        await self.conn.execute(delete(users).where(users.c.tenant_id == tenant_id))
        await self.conn.execute(delete(admins).where(admins.c.tenant_id == tenant_id))
        await self.conn.execute(
            delete(tenant_domains).where(tenant_domains.c.tenant_id == tenant_id)
        )
        await self.conn.execute(delete(tenants).where(tenants.c.id == tenant_id))

    async def count_users(self, tenant_id: int, *, include_hidden: bool) -> int:
        stmt = select(func.count()).select_from(users).where(users.c.tenant_id == tenant_id)
        if not include_hidden:
            stmt = stmt.where(users.c.hidden.is_(False))
        return int((await self.conn.execute(stmt)).scalar_one())

    # -- users -----------------------------------------------------------------

    async def user(
        self, tenant_id: int, username: str, *, with_plan: bool = True, for_update: bool = False
    ) -> User | None:
        """A user by name; ``for_update`` locks the row (PostgreSQL) until the commit."""
        stmt = _USER_STATEMENTS[(with_plan, for_update)]
        params = {"tenant_id": tenant_id, "username": username}
        row = (await self.conn.execute(stmt, params)).mappings().first()
        if row is None:
            return None
        return _user(row, (row.get("plan") or "") if with_plan else "")

    # -- membership (fingerplat/service/membership.py) -----------------------------

    async def tenant_ids(self) -> list[int]:
        return [int(r[0]) for r in await self.conn.execute(select(tenants.c.id))]

    async def usernames_page(
        self, after: tuple[int, str] | None, limit: int, *, tenant_id: int | None = None
    ) -> list[tuple[int, str, bool]]:
        """(tenant id, username, hidden) of every user, in (tenant, name) order, from ``after``.

        Keyset pages over the unique (tenant_id, username) index, so a load of
        a million names is many short statements, not one long one.
        """
        stmt = select(users.c.tenant_id, users.c.username, users.c.hidden)
        if tenant_id is not None:
            stmt = stmt.where(users.c.tenant_id == tenant_id)
        if after is not None:
            stmt = stmt.where(
                (users.c.tenant_id > after[0])
                | and_(users.c.tenant_id == after[0], users.c.username > after[1]))
        stmt = stmt.order_by(users.c.tenant_id, users.c.username).limit(limit)
        return [(int(t), str(u), bool(h)) for t, u, h in await self.conn.execute(stmt)]

    async def visible_users_page(self, tenant_id: int, after: str | None,
                                 limit: int) -> list[User]:
        """Visible users with their plans, by name, after ``after`` (warming the read cache)."""
        stmt = _USER_WITH_PLAN_BY_NAME_PAGE
        params = {"tenant_id": tenant_id, "after": after or "", "limit": limit}
        rows = (await self.conn.execute(stmt, params)).mappings().all()
        return [_user(row, row["plan"] or "") for row in rows]

    async def visible_users_all_page(self, after: tuple[int, str] | None,
                                     limit: int) -> list[User]:
        """Visible users of every tenant with their plans, in (tenant, name) order,
        after ``after`` (warming the read cache for many tenants: keyset pages over
        the unique (tenant_id, username) index, not one read per tenant)."""
        stmt = (select(*_USER_COLUMNS, plans.c.text.label("plan"))
                .select_from(users.outerjoin(plans, plans.c.user_id == users.c.id))
                .where(users.c.hidden.is_(False)))
        if after is not None:
            stmt = stmt.where(
                (users.c.tenant_id > after[0])
                | and_(users.c.tenant_id == after[0], users.c.username > after[1]))
        stmt = stmt.order_by(users.c.tenant_id, users.c.username).limit(limit)
        rows = (await self.conn.execute(stmt)).mappings().all()
        return [_user(row, row["plan"] or "") for row in rows]

    async def usernames_in(self, tenant_id: int, names: Sequence[str]) -> dict[str, bool]:
        """Which of ``names`` exist in the tenant: username -> hidden."""
        stmt = select(users.c.username, users.c.hidden).where(
            users.c.tenant_id == tenant_id, users.c.username.in_(list(names)))
        return {str(u): bool(h) for u, h in await self.conn.execute(stmt)}

    async def user_by_id(self, user_id: int) -> User | None:
        row = (
            (await self.conn.execute(select(*_USER_COLUMNS).where(users.c.id == user_id)))
            .mappings()
            .first()
        )
        return _user(row) if row else None

    async def list_users(
        self,
        tenant_id: int,
        *,
        include_hidden: bool,
        after: str | None = None,
        limit: int = 100,
        search: str | None = None,
    ) -> list[User]:
        """Users ordered by username; keyset pagination with ``after``."""
        stmt = select(*_USER_COLUMNS).where(users.c.tenant_id == tenant_id)
        if not include_hidden:
            stmt = stmt.where(users.c.hidden.is_(False))
        if after is not None:
            stmt = stmt.where(users.c.username > after)
        if search:
            escaped = search.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            pattern = "%" + escaped + "%"
            stmt = stmt.where(
                users.c.username.like(pattern, escape="\\")
                | func.lower(users.c.full_name).like(pattern.lower(), escape="\\")
            )
        stmt = stmt.order_by(users.c.username).limit(limit)
        return [_user(r) for r in (await self.conn.execute(stmt)).mappings()]

    async def add_user(self, tenant_id: int, now: datetime, **fields: Any) -> int:
        try:
            result = await self.conn.execute(
                insert(users).values(tenant_id=tenant_id, created_at=now, **fields)
            )
        except IntegrityError as exc:
            raise Conflict(f"user {fields.get('username')} already exists in this tenant") from exc
        return int(result.inserted_primary_key[0])

    async def update_user(self, user_id: int, **values: Any) -> None:
        await self.conn.execute(update(users).where(users.c.id == user_id).values(**values))

    async def remove_user(self, user_id: int) -> None:
        await self.conn.execute(delete(api_tokens).where(api_tokens.c.user_id == user_id))
        await self.conn.execute(delete(status_history).where(status_history.c.user_id == user_id))
        await self.conn.execute(delete(plans).where(plans.c.user_id == user_id))
        await self.conn.execute(delete(users).where(users.c.id == user_id))

    async def set_status(
        self, user_id: int, text: str | None, now: datetime, actor: str, channel: str,
        expires_at: datetime | None = None,
    ) -> None:
        await self.conn.execute(
            update(users)
            .where(users.c.id == user_id)
            .values(status=text, status_set_at=now if text is not None else None,
                    status_expires_at=expires_at if text is not None else None)
        )
        await self.conn.execute(
            insert(status_history).values(
                user_id=user_id, text=text, set_at=now, actor=actor, channel=channel,
                expires_at=expires_at if text is not None else None,
            )
        )

    async def set_status_expiry(self, user_id: int, expires_at: datetime | None) -> None:
        """Give the current status (and its history entry) an expiry, or remove it."""
        await self.conn.execute(
            update(users).where(users.c.id == user_id).values(status_expires_at=expires_at)
        )
        latest = (
            select(func.max(status_history.c.id))
            .where(status_history.c.user_id == user_id)
            .scalar_subquery()
        )
        await self.conn.execute(
            update(status_history).where(status_history.c.id == latest)
            .values(expires_at=expires_at)
        )

    async def due_expiries(self, now: datetime, limit: int) -> list[tuple[int, datetime]]:
        """``(user id, deadline)`` of statuses whose expiry has come, oldest first."""
        rows = await self.conn.execute(
            select(users.c.id, users.c.status_expires_at)
            .where(users.c.status_expires_at <= now)
            .order_by(users.c.status_expires_at)
            .limit(limit)
        )
        return [(r[0], r[1]) for r in rows]

    async def expire_status(self, user_id: int, deadline: datetime) -> bool:
        """Clear a status whose expiry is still ``deadline``; False if another did first.

        A compare-and-set: of several nodes sweeping at once only one matches
        the row, so the caller writes the audit event exactly once.
        """
        result = await self.conn.execute(
            update(users)
            .where(users.c.id == user_id, users.c.status_expires_at == deadline)
            .values(status=None, status_set_at=None, status_expires_at=None)
        )
        return result.rowcount == 1

    async def set_plan(self, user_id: int, text: str, now: datetime) -> None:
        updated = await self.conn.execute(
            update(plans).where(plans.c.user_id == user_id).values(text=text, updated_at=now)
        )
        if updated.rowcount == 0:
            await self.conn.execute(
                insert(plans).values(user_id=user_id, text=text, updated_at=now)
            )

    async def history(self, user_id: int, limit: int) -> list[StatusChange]:
        rows = await self.conn.execute(_RECENT_HISTORY, {"user_id": user_id, "limit": limit})
        return [
            StatusChange(
                id=r["id"], user_id=r["user_id"], text=r["text"], set_at=r["set_at"],
                actor=r["actor"], channel=r["channel"], expires_at=r["expires_at"],
            )
            for r in rows.mappings()
        ]

    async def status_changes_per_day(self, tenant_id: int, since: datetime) -> dict[str, int]:
        """``{"YYYY-MM-DD": count}`` of status changes (UTC days) of a tenant's users."""
        if self.conn.dialect.name == "postgresql":
            day = func.to_char(func.timezone("UTC", status_history.c.set_at), "YYYY-MM-DD")
        else:  # SQLite keeps UTC times as ISO text: the day is its first ten characters
            day = func.substr(status_history.c.set_at, 1, 10)
        stmt = (
            select(day.label("day"), func.count().label("changes"))
            .select_from(status_history.join(users, users.c.id == status_history.c.user_id))
            .where(users.c.tenant_id == tenant_id, status_history.c.set_at >= since)
            .group_by(day)
        )
        return {row.day: int(row.changes) for row in await self.conn.execute(stmt)}

    # -- tokens ----------------------------------------------------------------

    def _token_select(self) -> Any:
        return (
            select(
                api_tokens,
                tenants.c.slug.label("tenant_slug"),
                users.c.username.label("username"),
            )
            .select_from(
                api_tokens.outerjoin(tenants, tenants.c.id == api_tokens.c.tenant_id).outerjoin(
                    users, users.c.id == api_tokens.c.user_id
                )
            )
        )

    async def add_token(self, **values: Any) -> int:
        return await self._insert(insert(api_tokens).values(**values))

    async def token(self, token_id: int) -> tuple[Token, str] | None:
        row = (
            (await self.conn.execute(self._token_select().where(api_tokens.c.id == token_id)))
            .mappings()
            .first()
        )
        return (_token(row), row["secret_hash"]) if row else None

    async def list_tokens(self, tenant_id: int | None) -> list[Token]:
        stmt = self._token_select().order_by(api_tokens.c.id)
        if tenant_id is not None:
            stmt = stmt.where(api_tokens.c.tenant_id == tenant_id)
        return [_token(r) for r in (await self.conn.execute(stmt)).mappings()]

    async def update_token(self, token_id: int, **values: Any) -> None:
        await self.conn.execute(
            update(api_tokens).where(api_tokens.c.id == token_id).values(**values)
        )

    # -- admins ----------------------------------------------------------------

    async def add_admin(self, name: str, password_hash: str, tenant_id: int | None,
                        now: datetime) -> int:
        try:
            result = await self.conn.execute(
                insert(admins).values(
                    name=name, password_hash=password_hash, tenant_id=tenant_id, created_at=now
                )
            )
        except IntegrityError as exc:
            raise Conflict(f"admin {name} already exists") from exc
        return int(result.inserted_primary_key[0])

    async def admin(self, name: str) -> tuple[Admin, str] | None:
        row = (
            (
                await self.conn.execute(
                    select(admins, tenants.c.slug.label("tenant_slug"))
                    .select_from(admins.outerjoin(tenants, tenants.c.id == admins.c.tenant_id))
                    .where(admins.c.name == name)
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            return None
        return (
            Admin(row["id"], row["name"], row["tenant_id"], row["created_at"], row["tenant_slug"]),
            row["password_hash"],
        )

    async def list_admins(self, tenant_id: int | None = None) -> builtins.list[Admin]:
        stmt = (
            select(admins, tenants.c.slug.label("tenant_slug"))
            .select_from(admins.outerjoin(tenants, tenants.c.id == admins.c.tenant_id))
            .order_by(admins.c.name)
        )
        if tenant_id is not None:
            stmt = stmt.where(admins.c.tenant_id == tenant_id)
        return [
            Admin(r["id"], r["name"], r["tenant_id"], r["created_at"], r["tenant_slug"])
            for r in (await self.conn.execute(stmt)).mappings()
        ]

    async def update_admin_password(self, admin_id: int, password_hash: str) -> None:
        await self.conn.execute(
            update(admins).where(admins.c.id == admin_id).values(password_hash=password_hash)
        )

    async def remove_admin(self, admin_id: int) -> None:
        await self.conn.execute(delete(admins).where(admins.c.id == admin_id))

    # -- change notifications ------------------------------------------------------

    async def notify(self, channel: str, payload: str) -> None:
        """PostgreSQL NOTIFY in this transaction: delivered at commit, or never."""
        await self.conn.execute(sql_text("SELECT pg_notify(:channel, :payload)"),
                                {"channel": channel, "payload": payload})

    # -- audit -----------------------------------------------------------------

    async def add_audit(self, **values: Any) -> int:
        """Append one event to its tenant's (or the platform's) hash chain."""
        return await audit_store.append(self.conn, values)

    async def audit(self, query: AuditQuery, *,
                    tenant_id: int | None = None) -> Sequence[AuditEvent]:
        """Events newest first: of the tenant with this id, or (None) of everything.

        ``query.tenant`` is not used here: a slug may have named another tenant
        once, so the service resolves it to the tenant's id first.
        """
        return await audit_store.read(self.conn, query, tenant_id=tenant_id)

    async def audit_snapshot(self) -> None:
        """Read the rest of this transaction from one snapshot (call first)."""
        await audit_store.begin_snapshot(self.conn)

    async def audit_chains(self) -> dict[str, ChainHead | None]:
        return await audit_store.chains(self.conn)

    async def audit_chain_head(self, chain: str) -> ChainHead | None:
        return await audit_store.head(self.conn, chain)

    def audit_chain_events(self, chain: str) -> AsyncIterator[StoredEvent]:
        """One chain's events in id order, fetched a page at a time."""
        return audit_store.walk(self.conn, chain)

    # -- batched writes for importers --------------------------------------------
    # One statement per kind of change for a whole batch: COPY or the driver's
    # executemany for inserts, one UPDATE over arrays (PostgreSQL) or executemany
    # (SQLite) for updates, so a 100,000-line import is a few hundred round
    # trips, not a few hundred thousand.

    async def _bulk_insert(
        self, table: Table, names: Sequence[str], rows: Sequence[tuple[Any, ...]]
    ) -> None:
        """INSERT ``rows`` (tuples in the order of ``names``): COPY on PostgreSQL,
        the driver's executemany elsewhere.

        SQLAlchemy's multi-row INSERT spends most of a big import in Python,
        rendering and processing parameters row by row. Here the statement is
        written once and only the columns whose type needs it pass a bind
        processor (timestamps, once per distinct value; JSON, see
        :func:`_json_text`) before going to COPY (asyncpg encodes rows in C) or
        ``executemany`` (sqlite3's loop in C).
        """
        if not rows:
            return
        dialect = self.conn.dialect
        copy = dialect.driver == "asyncpg"
        if not copy and dialect.paramstyle != "qmark":
            # Another driver: the portable, slower path.
            await self.conn.execute(insert(table), [dict(zip(names, row, strict=True))
                                                    for row in rows])
            return
        # table.c[n] raises for a name that is not a column of the schema, so the
        # statement below only ever holds schema identifiers, quoted.
        processors = [_bind_processor(table.c[n].type, dialect) for n in names]
        params: Sequence[tuple[Any, ...]] = rows
        if any(proc is not None for proc in processors):
            columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
            for index, proc in enumerate(processors):
                if proc is not None:
                    columns[index] = _processed(columns[index], proc)
            params = list(zip(*columns, strict=True))
        try:
            if copy:
                await self._copy(table, list(names), params)
            else:
                quote = dialect.identifier_preparer.quote
                sql = (f"INSERT INTO {quote(table.name)} "  # noqa: S608 - schema identifiers
                       f"({', '.join(quote(n) for n in names)}) "
                       f"VALUES ({', '.join('?' for _ in names)})")
                await self.conn.exec_driver_sql(sql, list(params))
        except IntegrityError as exc:
            raise Conflict(f"a row of this batch collides with existing data in {table.name}") \
                from exc

    async def _bulk_update(self, table: Table, key: str, rows: Sequence[dict[str, Any]]) -> None:
        """UPDATE many rows by ``key`` through the driver's executemany (as _bulk_insert).

        Rows must have the same keys. Drivers other than sqlite3 take the
        portable SQLAlchemy executemany.
        """
        if not rows:
            return
        dialect = self.conn.dialect
        names = [n for n in rows[0] if n != key]
        if dialect.paramstyle != "qmark":
            stmt = (update(table).where(table.c[key] == bindparam(f"b_{key}"))
                    .values({n: bindparam(f"b_{n}") for n in names}))
            await self.conn.execute(stmt, [{f"b_{k}": v for k, v in row.items()}
                                           for row in rows])
            return
        order = [*names, key]
        processors = [_bind_processor(table.c[n].type, dialect) for n in order]
        quote = dialect.identifier_preparer.quote
        sql = (f"UPDATE {quote(table.name)} SET "  # noqa: S608 - schema identifiers only
               f"{', '.join(f'{quote(n)} = ?' for n in names)} WHERE {quote(key)} = ?")
        columns = [[row[name] for row in rows] for name in order]
        for index, proc in enumerate(processors):
            if proc is not None:
                columns[index] = _processed(columns[index], proc)
        await self.conn.exec_driver_sql(sql, list(zip(*columns, strict=True)))

    async def _copy(self, table: Table, names: list[str], params: Sequence[tuple[Any, ...]]
                    ) -> None:
        """PostgreSQL COPY on this unit's connection (so inside its transaction)."""
        import asyncpg

        raw = await self.conn.get_raw_connection()
        try:
            await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
                table.name, records=params, columns=names)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise Conflict(f"a row of this batch collides with existing data in {table.name}") \
                from exc

    async def users_in_range(
        self, tenant_id: int, first: str, last: str, *, for_update: bool = False
    ) -> dict[str, StoredUser]:
        """Users of a tenant named ``first`` .. ``last`` (inclusive), with their plans.

        A range scan on the (tenant, username) index rather than ``IN (...)``
        with a thousand parameters: a prepared ``IN`` list planned while the
        table was small turns into a sequential scan per batch as it grows.
        Importers ask for sorted, disjoint ranges, so every row is read once.
        """
        stmt = (
            select(users.c.id, users.c.username, users.c.full_name, users.c.office,
                   users.c.phone, users.c.project, users.c.hidden, users.c.status,
                   plans.c.text)
            .select_from(users.outerjoin(plans, plans.c.user_id == users.c.id))
            .where(and_(users.c.tenant_id == tenant_id, users.c.username >= first,
                        users.c.username <= last))
        )
        if for_update:  # PostgreSQL row locks; SQLite serialises writers anyway
            stmt = stmt.with_for_update(of=users)
        make = StoredUser._make
        if self.conn.dialect.driver == "asyncpg":
            # Straight to the driver (prepared, rows decoded in C): through
            # SQLAlchemy's result layer a re-import spent about 1 s of client
            # CPU per 100,000 users on wrapping rows it then took apart.
            driver = await self._driver_in_transaction()
            sql = _USERS_IN_RANGE + (" FOR UPDATE OF u" if for_update else "")
            return {row[1]: make(row) for row in await driver.fetch(sql, tenant_id, first, last)}
        return {row[1]: make(row) for row in (await self.conn.execute(stmt)).all()}

    async def _driver_in_transaction(self) -> Any:
        """This unit's asyncpg connection, with the unit's transaction begun.

        SQLAlchemy's asyncpg adapter sends BEGIN with its own first statement;
        a statement sent to the driver before that would run outside the
        transaction (a ``FOR UPDATE`` lock would be released at once).
        """
        driver = (await self.conn.get_raw_connection()).driver_connection
        assert driver is not None
        if not driver.is_in_transaction():
            await self.conn.execute(sql_text("SELECT 1"))
        return driver

    async def insert_users(
        self, tenant_id: int, now: datetime, rows: Sequence[dict[str, Any]]
    ) -> dict[str, int]:
        """Create many users in one COPY/executemany; returns their ids by username.

        The ids are read back with one range query over the inserted names
        (RETURNING is not available through COPY or executemany).
        """
        if not rows:
            return {}
        names = [row["username"] for row in rows]
        get = itemgetter(*_NEW_USER_FIELDS)
        if self.conn.dialect.driver == "asyncpg":
            # Draw the ids first and COPY them with the rows: no read-back query
            # (5,000 rows decoded per batch) and the ids are known at once.
            driver = await self._driver_in_transaction()
            ids = await driver.fetchval(  # one array, not a row per id
                "SELECT array(SELECT nextval(pg_get_serial_sequence('users', 'id')) "
                "FROM generate_series(1, $1))", len(rows))
            # Straight to COPY: the values are the importer's own, already of the
            # column types (aware times, booleans), so no bind processing per row.
            await self._copy(
                users, ["id", "tenant_id", "created_at", *_NEW_USER_FIELDS],
                [(uid, tenant_id, now, *get(row)) for uid, row in zip(ids, rows, strict=True)])
            return dict(zip(names, ids, strict=True))
        await self._bulk_insert(users, ("tenant_id", "created_at", *_NEW_USER_FIELDS),
                                [(tenant_id, now, *get(row)) for row in rows])
        wanted = set(names)
        found = await self.conn.execute(
            select(users.c.id, users.c.username).where(and_(
                users.c.tenant_id == tenant_id, users.c.username >= min(names),
                users.c.username <= max(names))))
        return {username: int(uid) for uid, username in found.all() if username in wanted}

    async def update_user_profiles(
        self, rows: Sequence[tuple[dict[str, Any], dict[str, Any]]]
    ) -> None:
        """Write new profiles: pairs of ``id, full_name, office, phone, project, hidden``
        (full values) and the ``full_name .. hidden`` values read before.

        On PostgreSQL a row only changes if it still holds the values read (the
        batch read it without a lock); one that does not raises
        :class:`Conflict`. SQLite's unit of work holds the write lock from its
        ``BEGIN IMMEDIATE``, so what it read is still current.
        """
        if not rows:
            return
        if self.conn.dialect.name != "postgresql":
            await self._bulk_update(users, "id", [new for new, _ in rows])
            return
        columns = ("full_name", "office", "phone", "project", "hidden")
        params: dict[str, Any] = {"ids": [new["id"] for new, _ in rows]}
        for name in columns:
            params[name] = [new[name] for new, _ in rows]
            params[f"old_{name}"] = [old[name] for _, old in rows]
        await self._compare_and_set(
            "UPDATE users AS u SET full_name = v.full_name, office = v.office, phone = v.phone, "
            "project = v.project, hidden = v.hidden "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:full_name AS varchar[]), "
            "CAST(:office AS varchar[]), CAST(:phone AS varchar[]), CAST(:project AS varchar[]), "
            "CAST(:hidden AS boolean[]), CAST(:old_full_name AS varchar[]), "
            "CAST(:old_office AS varchar[]), CAST(:old_phone AS varchar[]), "
            "CAST(:old_project AS varchar[]), CAST(:old_hidden AS boolean[])) "
            "AS v(id, full_name, office, phone, project, hidden, old_full_name, old_office, "
            "old_phone, old_project, old_hidden) "
            "WHERE u.id = v.id AND u.id = ANY(CAST(:ids AS bigint[])) "
            "AND u.full_name = v.old_full_name AND u.office = v.old_office "
            "AND u.phone = v.old_phone AND u.project = v.old_project "
            "AND u.hidden = v.old_hidden", params, len(rows), "users")

    async def update_statuses(
        self, changes: Sequence[tuple[int, str | None, str | None]], now: datetime
    ) -> None:
        """Set (or clear, with None) the status of many users: ``(id, new, as read before)``.

        Only the users rows; the history rows go through :meth:`add_status_history`.
        Compare and set on PostgreSQL, as :meth:`update_user_profiles`.
        """
        if not changes:
            return
        if self.conn.dialect.name != "postgresql":
            await self._bulk_update(users, "id", [
                {"id": uid, "status": text, "status_set_at": now if text is not None else None,
                 "status_expires_at": None}
                for uid, text, _ in changes
            ])
            return
        # One statement over arrays instead of one UPDATE per row.
        await self._compare_and_set(
            "UPDATE users AS u SET status = v.status, status_set_at = CASE WHEN "
            "v.status IS NULL THEN NULL ELSE CAST(:at AS timestamptz) END, "
            "status_expires_at = NULL "
            "FROM unnest(CAST(:ids AS bigint[]), CAST(:texts AS varchar[]), "
            "CAST(:olds AS varchar[])) AS v(id, status, old) "
            "WHERE u.id = v.id AND u.id = ANY(CAST(:ids AS bigint[])) "
            "AND u.status IS NOT DISTINCT FROM v.old",
            {"ids": [uid for uid, _, _ in changes], "texts": [t for _, t, _ in changes],
             "olds": [old for _, _, old in changes], "at": now},
            len(changes), "users")

    async def _compare_and_set(self, sql: str, params: dict[str, Any], expected: int,
                               table: str) -> None:
        """Run a conditional UPDATE; Conflict unless every row it names matched.

        The statements join the table to arrays by id and also say ``id =
        ANY(ids)``: without it, the planner joins by a hash of the whole table
        or a merge over its primary key from the first id on, so each batch
        costs the size of the tenant instead of the size of the batch.
        """
        result = await self.conn.execute(sql_text(sql), params)
        if result.rowcount != expected:
            raise Conflict(f"{expected - result.rowcount} rows of {table} changed meanwhile")

    async def add_status_history(
        self, changes: Sequence[tuple[int, str | None]], now: datetime, actor: str, channel: str
    ) -> None:
        """History rows for statuses written with the user rows (insert or update)."""
        if changes and self.conn.dialect.driver == "asyncpg":
            await self._copy(status_history, ["user_id", "text", "set_at", "actor", "channel"],
                             [(uid, text, now, actor, channel) for uid, text in changes])
            return
        await self._bulk_insert(status_history, ("user_id", "text", "set_at", "actor", "channel"),
                                [(uid, text, now, actor, channel) for uid, text in changes])

    async def set_plans(
        self,
        updates: Sequence[tuple[int, str, str]],
        inserts: Sequence[tuple[int, str]],
        now: datetime,
    ) -> None:
        """Replace existing plan rows (``updates``: id, new text, text read before) and
        add missing ones (``inserts``); compare and set on PostgreSQL, and a plan
        row added meanwhile raises :class:`Conflict`.
        """
        if updates and self.conn.dialect.name == "postgresql":
            await self._compare_and_set(
                "UPDATE plans AS p SET text = v.text, updated_at = CAST(:at AS timestamptz) "
                "FROM unnest(CAST(:ids AS bigint[]), CAST(:texts AS text[]), "
                "CAST(:olds AS text[])) AS v(user_id, text, old) "
                "WHERE p.user_id = v.user_id AND p.user_id = ANY(CAST(:ids AS bigint[])) "
                "AND p.text = v.old",
                {"ids": [uid for uid, _, _ in updates], "texts": [t for _, t, _ in updates],
                 "olds": [old for _, _, old in updates], "at": now},
                len(updates), "plans")
        else:
            await self._bulk_update(plans, "user_id", [
                {"user_id": uid, "text": text, "updated_at": now} for uid, text, _ in updates])
        if inserts:
            try:
                await self.conn.execute(
                    insert(plans),
                    [{"user_id": uid, "text": text, "updated_at": now} for uid, text in inserts],
                )
            except IntegrityError as exc:
                raise Conflict("a plan of this batch was added meanwhile") from exc

    async def add_audits(self, shared: BatchFields, rows: Sequence[BatchRow]) -> None:
        """A batch of audit events of one chain: the fields they share, then each one's
        ``(action, target, username, before, after)``, in chain order."""
        if shared.at.tzinfo is not UTC:  # SQLite stores the wall time and reads it as UTC
            shared = replace(shared, at=shared.at.astimezone(UTC))
        chained = await audit_store.chain_batch(self.conn, shared, rows)
        at, tenant, actor, channel = shared.at, shared.tenant, shared.actor, shared.channel
        outcome, remote, detail, tenant_id = (shared.outcome, shared.remote_addr, shared.detail,
                                              shared.tenant_id)
        if chained and self.conn.dialect.driver == "asyncpg":
            # Tuples straight to COPY, the JSON values as the text that was hashed
            # (keys sorted, no blanks: the same values, encoded once): going through
            # _bulk_insert's column-wise bind processing cost 0.4 s of client CPU per
            # 100,000 events, mostly turning rows into columns and back.
            await self._copy(audit_events, list(_CHAINED_AUDIT_FIELDS), [
                (event_id, at, tenant, actor, channel, action, target, username, outcome,
                 before, after, remote, detail, tenant_id, prev_hash, digest)
                for (action, target, username, _, _), (event_id, prev_hash, digest, before, after)
                in zip(rows, chained, strict=True)])
            return
        await self._bulk_insert(audit_events, _CHAINED_AUDIT_FIELDS, [
            (event_id, at, tenant, actor, channel, action, target, username, outcome,
             before, after, remote, detail, tenant_id, prev_hash, digest)
            for (action, target, username, before, after), (event_id, prev_hash, digest, _, _)
            in zip(rows, chained, strict=True)])

    async def users_with_plans(
        self, tenant_id: int, *, after: str | None, limit: int
    ) -> builtins.list[User]:
        """Every user of a tenant (hidden too) with plans, by username, for export."""
        stmt = (
            select(*_USER_COLUMNS, plans.c.text.label("plan"))
            .select_from(users.outerjoin(plans, plans.c.user_id == users.c.id))
            .where(users.c.tenant_id == tenant_id)
        )
        if after is not None:
            stmt = stmt.where(users.c.username > after)
        stmt = stmt.order_by(users.c.username).limit(limit)
        return [_user(r, r["plan"] or "") for r in (await self.conn.execute(stmt)).mappings()]
