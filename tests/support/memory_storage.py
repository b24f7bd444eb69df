"""An in-memory storage for the service's rule tests (the Protocols of service/ports.py).

The service's rules (who may do what, what a refusal audits, input checks,
token expiry, tenant settings) do not depend on SQL, so their tests run on
this fake and need no database: :class:`MemoryStorage` hands out units of work
over plain dicts. A unit works on a deep copy of the committed state and puts
it back at its commit; a unit that raises leaves the state as it was, as a
rolled-back transaction does. Units are not isolated from each other beyond
that (last commit wins): what concurrency, locks, constraints, the audit hash
chain and the drivers do is tested on SQLite and PostgreSQL
(tests/integration/), never here.

Only the queries the rule tests reach are here; any other one is an
``AttributeError`` naming it, so a test that wanders into SQL-only ground says
so instead of passing on a guess.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

from fingerplat.domain.errors import Conflict
from fingerplat.domain.model import (
    Admin,
    AuditEvent,
    AuditQuery,
    PseudoUser,
    StatusChange,
    Tenant,
    Token,
    TokenScope,
    User,
)
from fingerplat.domain.throttle import Counter
from fingerplat.domain.visibility import network_policy

T = TypeVar("T")

_TENANT_DEFAULTS: dict[str, Any] = {
    "list_users": True, "forwarding": False, "is_default": False, "finger_log": False,
    "timezone": "UTC", "public_fields": None, "trusted_networks": None,
    "rejected_networks": None, "self_edit_fields": None,
}
_USER_FIELDS = ("full_name", "office", "phone", "project", "hidden", "status", "status_set_at",
                "finger_log", "status_expires_at")


@dataclass
class _State:
    """Every "table" as plain data; ids count up per table, as serial keys do."""

    tenants: dict[int, dict[str, Any]] = field(default_factory=dict)
    domains: dict[str, int] = field(default_factory=dict)
    users: dict[int, dict[str, Any]] = field(default_factory=dict)
    plans: dict[int, str] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    tokens: dict[int, dict[str, Any]] = field(default_factory=dict)
    admins: dict[int, dict[str, Any]] = field(default_factory=dict)
    pseudo: dict[int, dict[str, Any]] = field(default_factory=dict)
    audit: list[dict[str, Any]] = field(default_factory=list)
    throttle: dict[str, Counter] = field(default_factory=dict)
    next_id: dict[str, int] = field(default_factory=dict)

    def new_id(self, table: str) -> int:
        self.next_id[table] = self.next_id.get(table, 0) + 1
        return self.next_id[table]

    def data(self) -> dict[str, Any]:
        """Everything but the audit trail and the throttle's counters: what "nothing
        changed" compares (the trail and the counters grow with refusals)."""
        return copy.deepcopy({k: v for k, v in vars(self).items()
                              if k not in ("audit", "throttle", "next_id")})


class _Throttle:
    def __init__(self, state: _State) -> None:
        self._state = state

    async def peek(self, keys: Sequence[str]) -> dict[str, Counter]:
        return {k: self._state.throttle[k] for k in keys if k in self._state.throttle}

    async def lock(self, keys: Sequence[str], now: datetime) -> dict[str, Counter]:
        for key in keys:
            self._state.throttle.setdefault(key, Counter(key, now, updated_at=now))
        return {k: self._state.throttle[k] for k in sorted(set(keys))}

    async def save(self, counter: Counter) -> None:
        self._state.throttle[counter.key] = replace(
            counter, updated_at=counter.updated_at or counter.window_start)

    async def drop(self, keys: Sequence[str]) -> None:
        for key in keys:
            self._state.throttle.pop(key, None)

    async def due(self, started_before: datetime, summarised_before: datetime,
                  limit: int) -> list[str]:
        due = [c for c in self._state.throttle.values()
               if c.window_start < started_before or (
                   c.failures > c.audited
                   and (c.summarised_at is None or c.summarised_at <= summarised_before))]
        return [c.key for c in sorted(due, key=lambda c: c.window_start)][:limit]


class MemoryRepository:
    """The queries of service/ports.py's ``Repository`` the rule tests need, on dicts."""

    notifies_at_commit = False

    def __init__(self, state: _State) -> None:
        self._s = state
        self.after_commit: list[tuple[Any, bool]] = []

    @property
    def throttle(self) -> _Throttle:
        return _Throttle(self._s)

    # -- tenants ---------------------------------------------------------------

    def _tenant(self, tenant_id: int) -> Tenant:
        row = self._s.tenants[tenant_id]
        fields = row["public_fields"]
        return Tenant(
            id=tenant_id, slug=row["slug"], name=row["name"], list_users=row["list_users"],
            forwarding=row["forwarding"], is_default=row["is_default"],
            domains=tuple(sorted(d for d, t in self._s.domains.items() if t == tenant_id)),
            created_at=row["created_at"], finger_log=row["finger_log"],
            timezone=row["timezone"] or "UTC",
            public_fields=None if fields is None else frozenset(fields),
            trusted_networks=tuple(row["trusted_networks"] or ()),
            rejected_networks=tuple(row["rejected_networks"] or ()),
            networks=network_policy(row["trusted_networks"], row["rejected_networks"]),
        )

    def _tenant_where(self, **match: Any) -> Tenant | None:
        for tenant_id, row in self._s.tenants.items():
            if all(row[k] == v for k, v in match.items()):
                return self._tenant(tenant_id)
        return None

    async def tenant_by_slug(self, slug: str) -> Tenant | None:
        return self._tenant_where(slug=slug)

    async def tenant_by_id(self, tenant_id: int) -> Tenant | None:
        return self._tenant(tenant_id) if tenant_id in self._s.tenants else None

    async def tenant_by_domain(self, domain: str) -> Tenant | None:
        tenant_id = self._s.domains.get(domain)
        return self._tenant(tenant_id) if tenant_id is not None else None

    async def default_tenant(self) -> Tenant | None:
        return self._tenant_where(is_default=True)

    async def list_tenants(self) -> list[Tenant]:
        return sorted((self._tenant(i) for i in self._s.tenants), key=lambda t: t.slug)

    async def lock_tenant(self, tenant_id: int, *, exclusive: bool = True) -> bool:
        return tenant_id in self._s.tenants

    async def add_tenant(self, slug: str, name: str, now: datetime) -> int:
        if self._tenant_where(slug=slug) is not None:
            raise Conflict("that name or domain is already taken")
        tenant_id = self._s.new_id("tenants")
        self._s.tenants[tenant_id] = {**_TENANT_DEFAULTS, "slug": slug, "name": name,
                                      "created_at": now}
        return tenant_id

    async def update_tenant(self, tenant_id: int, **values: Any) -> None:
        self._s.tenants[tenant_id].update(values)

    async def add_domain(self, tenant_id: int, domain: str) -> None:
        if domain in self._s.domains:
            raise Conflict(f"domain {domain} already belongs to a tenant")
        self._s.domains[domain] = tenant_id

    async def remove_domain(self, tenant_id: int, domain: str) -> bool:
        if self._s.domains.get(domain) != tenant_id:
            return False
        del self._s.domains[domain]
        return True

    async def remove_tenant(self, tenant_id: int) -> None:
        for user_id in [i for i, u in self._s.users.items() if u["tenant_id"] == tenant_id]:
            await self.remove_user(user_id)
        s = self._s
        s.tokens = {i: t for i, t in s.tokens.items() if t["tenant_id"] != tenant_id}
        s.admins = {i: a for i, a in s.admins.items() if a["tenant_id"] != tenant_id}
        s.domains = {d: t for d, t in s.domains.items() if t != tenant_id}
        del s.tenants[tenant_id]

    async def count_users(self, tenant_id: int, *, include_hidden: bool) -> int:
        return sum(1 for u in self._s.users.values()
                   if u["tenant_id"] == tenant_id and (include_hidden or not u["hidden"]))

    async def tenant_self_edit_fields(self, tenant_id: int) -> object:
        row = self._s.tenants.get(tenant_id)
        return row["self_edit_fields"] if row else None

    async def set_tenant_self_edit_fields(self, tenant_id: int, fields: list[str]) -> None:
        self._s.tenants[tenant_id]["self_edit_fields"] = list(fields)

    # -- users -----------------------------------------------------------------

    def _user(self, user_id: int, *, with_plan: bool = True) -> User:
        row = self._s.users[user_id]
        return User(id=user_id, tenant_id=row["tenant_id"], username=row["username"],
                    created_at=row["created_at"],
                    plan=self._s.plans.get(user_id, "") if with_plan else "",
                    **{k: row[k] for k in _USER_FIELDS})

    async def user(self, tenant_id: int, username: str, *, with_plan: bool = True,
                   for_update: bool = False) -> User | None:
        for user_id, row in self._s.users.items():
            if row["tenant_id"] == tenant_id and row["username"] == username:
                return self._user(user_id, with_plan=with_plan)
        return None

    async def list_users(self, tenant_id: int, *, include_hidden: bool,
                         after: str | None = None, limit: int = 100,
                         search: str | None = None) -> list[User]:
        """By name, after ``after``; ``search`` in the name or (any case) the full name."""
        found = [self._user(i, with_plan=False) for i, u in self._s.users.items()
                 if u["tenant_id"] == tenant_id and (include_hidden or not u["hidden"])
                 and (after is None or u["username"] > after)
                 and (not search or search in u["username"]
                      or search.lower() in u["full_name"].lower())]
        return sorted(found, key=lambda u: u.username)[:limit]

    async def status_changes_per_day(self, tenant_id: int, since: datetime) -> dict[str, int]:
        mine = {i for i, u in self._s.users.items() if u["tenant_id"] == tenant_id}
        days: dict[str, int] = {}
        for h in self._s.history:
            if h["user_id"] in mine and h["set_at"] >= since:
                day = h["set_at"].astimezone(UTC).date().isoformat()
                days[day] = days.get(day, 0) + 1
        return days

    async def user_by_id(self, user_id: int) -> User | None:
        return self._user(user_id, with_plan=False) if user_id in self._s.users else None

    async def add_user(self, tenant_id: int, now: datetime, **fields: Any) -> int:
        if await self.user(tenant_id, fields["username"]) is not None:
            raise Conflict(f"user {fields['username']} already exists in this tenant")
        user_id = self._s.new_id("users")
        row: dict[str, Any] = {"full_name": "", "office": "", "phone": "", "project": "",
                               "hidden": False, "status": None, "status_set_at": None,
                               "finger_log": False, "status_expires_at": None,
                               "password_hash": None}
        self._s.users[user_id] = {**row, **fields, "tenant_id": tenant_id, "created_at": now}
        return user_id

    async def update_user(self, user_id: int, **values: Any) -> None:
        self._s.users[user_id].update(values)

    async def remove_user(self, user_id: int) -> None:
        s = self._s
        s.tokens = {i: t for i, t in s.tokens.items() if t["user_id"] != user_id}
        s.history = [h for h in s.history if h["user_id"] != user_id]
        s.plans.pop(user_id, None)
        del s.users[user_id]

    async def set_status(self, user_id: int, text: str | None, now: datetime, actor: str,
                         channel: str, expires_at: datetime | None = None) -> None:
        expires = expires_at if text is not None else None
        self._s.users[user_id].update(status=text, status_expires_at=expires,
                                      status_set_at=now if text is not None else None)
        self._s.history.append({"id": self._s.new_id("history"), "user_id": user_id,
                                "text": text, "set_at": now, "actor": actor,
                                "channel": channel, "expires_at": expires})

    async def set_status_expiry(self, user_id: int, expires_at: datetime | None) -> None:
        self._s.users[user_id]["status_expires_at"] = expires_at
        mine = [h for h in self._s.history if h["user_id"] == user_id]
        if mine:
            mine[-1]["expires_at"] = expires_at

    async def due_expiries(self, now: datetime, limit: int) -> list[tuple[int, datetime]]:
        due = sorted((u["status_expires_at"], i) for i, u in self._s.users.items()
                     if u["status_expires_at"] is not None and u["status_expires_at"] <= now)
        return [(i, at) for at, i in due[:limit]]

    async def expire_status(self, user_id: int, deadline: datetime) -> bool:
        row = self._s.users.get(user_id)
        if row is None or row["status_expires_at"] != deadline:
            return False
        row.update(status=None, status_set_at=None, status_expires_at=None)
        return True

    async def add_status_history(self, changes: Sequence[tuple[int, str | None]],
                                 now: datetime, actor: str, channel: str) -> None:
        for user_id, text in changes:
            self._s.history.append({"id": self._s.new_id("history"), "user_id": user_id,
                                    "text": text, "set_at": now, "actor": actor,
                                    "channel": channel, "expires_at": None})

    async def set_plan(self, user_id: int, text: str, now: datetime) -> None:
        self._s.plans[user_id] = text

    async def history(self, user_id: int, limit: int) -> list[StatusChange]:
        mine = [h for h in reversed(self._s.history) if h["user_id"] == user_id][:limit]
        return [StatusChange(**h) for h in mine]

    async def user_password_hash(self, user_id: int) -> str | None:
        return self._s.users[user_id]["password_hash"] if user_id in self._s.users else None

    async def set_user_password(self, user_id: int, password_hash: str | None) -> None:
        self._s.users[user_id]["password_hash"] = password_hash

    async def remove_user_web_sessions(self, user_id: int) -> int:
        return 0  # web sessions live in SQL only (tests/integration/web)

    async def pseudo_user(self, tenant_id: int, name: str) -> PseudoUser | None:
        for pseudo_id, row in self._s.pseudo.items():
            if row["tenant_id"] == tenant_id and row["name"] == name:
                return PseudoUser(pseudo_id, tenant_id, name, row["kind"], row["created_at"])
        return None

    # -- tokens and admins -------------------------------------------------------

    def _token(self, token_id: int) -> Token:
        row = self._s.tokens[token_id]
        tenant = self._s.tenants.get(row["tenant_id"]) if row["tenant_id"] else None
        user = self._s.users.get(row["user_id"]) if row["user_id"] else None
        return Token(
            id=token_id, scope=TokenScope(row["scope"]), tenant_id=row["tenant_id"],
            user_id=row["user_id"], created_at=row["created_at"], created_by=row["created_by"],
            expires_at=row.get("expires_at"), revoked_at=row.get("revoked_at"),
            last_used_at=row.get("last_used_at"),
            tenant_slug=tenant["slug"] if tenant else None,
            username=user["username"] if user else None,
        )

    async def add_token(self, **values: Any) -> int:
        token_id = self._s.new_id("tokens")
        self._s.tokens[token_id] = dict(values)
        return token_id

    async def token(self, token_id: int) -> tuple[Token, str] | None:
        if token_id not in self._s.tokens:
            return None
        return self._token(token_id), self._s.tokens[token_id]["secret_hash"]

    async def list_tokens(self, tenant_id: int | None) -> list[Token]:
        return [self._token(i) for i in sorted(self._s.tokens)
                if tenant_id is None or self._s.tokens[i]["tenant_id"] == tenant_id]

    async def update_token(self, token_id: int, **values: Any) -> None:
        self._s.tokens[token_id].update(values)

    def _admin(self, admin_id: int) -> Admin:
        row = self._s.admins[admin_id]
        tenant = self._s.tenants.get(row["tenant_id"]) if row["tenant_id"] else None
        return Admin(admin_id, row["name"], row["tenant_id"], row["created_at"],
                     tenant["slug"] if tenant else None)

    async def add_admin(self, name: str, password_hash: str, tenant_id: int | None,
                        now: datetime) -> int:
        if await self.admin(name) is not None:
            raise Conflict(f"admin {name} already exists")
        admin_id = self._s.new_id("admins")
        self._s.admins[admin_id] = {"name": name, "password_hash": password_hash,
                                    "tenant_id": tenant_id, "created_at": now}
        return admin_id

    async def admin(self, name: str) -> tuple[Admin, str] | None:
        for admin_id, row in self._s.admins.items():
            if row["name"] == name:
                return self._admin(admin_id), row["password_hash"]
        return None

    async def list_admins(self, tenant_id: int | None = None) -> list[Admin]:
        found = [self._admin(i) for i, a in self._s.admins.items()
                 if tenant_id is None or a["tenant_id"] == tenant_id]
        return sorted(found, key=lambda a: a.name)

    async def update_admin_password(self, admin_id: int, password_hash: str) -> None:
        self._s.admins[admin_id]["password_hash"] = password_hash

    async def remove_admin(self, admin_id: int) -> None:
        del self._s.admins[admin_id]

    # -- audit -------------------------------------------------------------------

    async def add_audit(self, **values: Any) -> int:
        event_id = self._s.new_id("audit")
        self._s.audit.append({**values, "id": event_id})
        return event_id

    async def audit(self, query: AuditQuery, *,
                    tenant_id: int | None = None) -> Sequence[AuditEvent]:
        def wanted(row: dict[str, Any]) -> bool:
            return ((tenant_id is None or row["tenant_id"] == tenant_id)
                    and query.username in (None, row["username"])
                    and query.action in (None, row["action"])
                    and (query.since is None or row["at"] >= query.since)
                    and (query.until is None or row["at"] < query.until)
                    and (query.before_id is None or row["id"] < query.before_id))

        rows = [r for r in reversed(self._s.audit) if wanted(r)][:query.limit]
        return [AuditEvent(
            id=r["id"], at=r["at"], tenant=r["tenant"], actor=r["actor"], channel=r["channel"],
            action=r["action"], target=r["target"], outcome=r["outcome"], before=r["before"],
            after=r["after"], remote_addr=r["remote_addr"], detail=r["detail"],
            tenant_id=r["tenant_id"],
            tenant_removed=r["tenant_id"] is not None and r["tenant_id"] not in self._s.tenants,
        ) for r in rows]


class MemoryStorage:
    """``FingerplatService(storage=MemoryStorage())``: the service on dicts.

    It starts as a freshly migrated database does: with the default tenant.
    """

    def __init__(self) -> None:
        self.state = _State()
        default = self.state.new_id("tenants")
        self.state.tenants[default] = {**_TENANT_DEFAULTS, "slug": "default",
                                       "name": "Default", "is_default": True,
                                       "created_at": datetime(2026, 1, 1, tzinfo=UTC)}

    @asynccontextmanager
    async def unit(self, *, readonly: bool = False) -> AsyncIterator[MemoryRepository]:
        working = copy.deepcopy(self.state)
        yield MemoryRepository(working)
        if not readonly:
            self.state = working

    async def read(self, fetch: Callable[[MemoryRepository], Awaitable[T]]) -> T:
        async with self.unit(readonly=True) as repo:
            return await fetch(repo)

    def data(self) -> dict[str, Any]:
        """All but the audit trail and the throttle (see :meth:`_State.data`)."""
        return self.state.data()

    def audit_count(self) -> int:
        return len(self.state.audit)
