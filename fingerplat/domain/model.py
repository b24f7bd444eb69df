"""Plain value types passed between the repository, the service and the adapters.

They are frozen dataclasses with no behaviour tied to storage or protocol, so
an adapter can render them and a test can build them without a database.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fingerplat.domain.visibility import NetworkPolicy


class Channel(enum.StrEnum):
    """Where a request came from; recorded on every audit event and status change."""

    CLI = "cli"
    WEB = "web"
    API = "api"
    XMLRPC = "xmlrpc"
    SETTER = "setter"
    IRC = "irc"
    IMPORT = "import"
    FINGER = "finger"
    SYSTEM = "system"  # the platform itself (a status expiring)


class Role(enum.StrEnum):
    PLATFORM_ADMIN = "platform_admin"
    TENANT_ADMIN = "tenant_admin"
    USER = "user"
    ANONYMOUS = "anonymous"


class TokenScope(enum.StrEnum):
    USER = "user"
    TENANT = "tenant"
    PLATFORM = "platform"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is acting. ``name`` is the actor label written to the audit trail."""

    role: Role
    name: str
    tenant_id: int | None = None
    user_id: int | None = None
    token_id: int | None = None
    admin_id: int | None = None

    @classmethod
    def anonymous(cls) -> Principal:
        return cls(Role.ANONYMOUS, "anonymous")

    @classmethod
    def operator(cls, os_user: str) -> Principal:
        """The CLI operator acts as a platform admin, audited as ``cli:<os user>``."""
        return cls(Role.PLATFORM_ADMIN, f"cli:{os_user}")


@dataclass(frozen=True, slots=True)
class Context:
    """A principal plus the request facts the audit trail records."""

    principal: Principal
    channel: Channel
    remote_addr: str | None = None


@dataclass(frozen=True, slots=True)
class Tenant:
    id: int
    slug: str
    name: str
    list_users: bool
    forwarding: bool
    is_default: bool
    domains: tuple[str, ...] = ()
    created_at: datetime | None = None
    # -- issue 16: who fingered me (the tenant's opt-in; the user's is on User) --
    finger_log: bool = False
    timezone: str = "UTC"
    #: The fields public answers show; None: all of them (domain/visibility.py).
    public_fields: frozenset[str] | None = None
    trusted_networks: tuple[str, ...] = ()
    rejected_networks: tuple[str, ...] = ()
    #: Both network lists parsed once (None: the tenant has no networks).
    networks: NetworkPolicy | None = field(default=None, compare=False, repr=False)

    def shows(self, name: str) -> bool:
        """Whether public answers show the user field ``name`` (``status``, ``plan``...)."""
        return self.public_fields is None or name in self.public_fields


@dataclass(frozen=True, slots=True)
class User:
    id: int
    tenant_id: int
    username: str
    full_name: str = ""
    office: str = ""
    phone: str = ""
    project: str = ""
    hidden: bool = False
    status: str | None = None
    status_set_at: datetime | None = None
    plan: str = ""
    created_at: datetime | None = None
    # -- issue 16: who fingered me (the user's opt-in; the tenant's is on Tenant) --
    finger_log: bool = False
    status_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StatusChange:
    id: int
    user_id: int
    text: str | None  # None: the status was cleared
    set_at: datetime
    # Who changed it and through what: for administrators and the user only.
    # None in public answers (see :meth:`public`).
    actor: str | None
    channel: str | None
    expires_at: datetime | None = None

    def public(self) -> StatusChange:
        """What changed and when (and until when), never who changed it (SPEC 11)."""
        return StatusChange(self.id, self.user_id, self.text, self.set_at, None, None,
                            self.expires_at)


@dataclass(frozen=True, slots=True)
class AuditEvent:
    id: int
    at: datetime
    tenant: str | None
    actor: str
    channel: str
    action: str
    target: str
    outcome: str  # "ok" or "denied" or "failed"
    before: dict | None = None
    after: dict | None = None
    remote_addr: str | None = None
    detail: str = ""
    # The tenant's immutable id (None: a platform-level event); ``tenant`` is the
    # slug it had then. ``tenant_removed``: that tenant no longer exists (a new
    # tenant may carry the same slug; it never sees these events).
    tenant_id: int | None = None
    tenant_removed: bool = False
    hash: str | None = None

    @property
    def tenant_label(self) -> str:
        """The tenant as listings show it: its slug, "(removed)" once it is gone."""
        if self.tenant is None:
            return "-"
        return f"{self.tenant} (removed)" if self.tenant_removed else self.tenant


@dataclass(frozen=True, slots=True)
class Token:
    id: int
    scope: TokenScope
    tenant_id: int | None
    user_id: int | None
    created_at: datetime
    created_by: str
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    tenant_slug: str | None = None
    username: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A freshly created token: ``secret`` exists only here and is never stored."""

    token: Token
    secret: str


@dataclass(frozen=True, slots=True)
class Admin:
    id: int
    name: str
    tenant_id: int | None
    created_at: datetime
    tenant_slug: str | None = None


@dataclass(frozen=True, slots=True)
class UserPage:
    """A page of a listing plus what is needed to fetch the next one."""

    users: list[User]
    total: int
    next_cursor: str | None = None
    #: The fields shown (None: all); public pages leave the others out.
    fields: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class AuditQuery:
    tenant: str | None = None
    username: str | None = None
    action: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None
    limit: int = 50


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """Published after a change commits; caches, IRC announcements and nodes listen.

    ``kind`` is "status", "plan", "user", "tenant" or "token"; or "resync",
    published when a node may have missed events (its LISTEN connection was
    lost): every cache must then drop everything. ``remote`` is True for an
    event that another node committed and PostgreSQL NOTIFY delivered here.
    """

    kind: str
    tenant_id: int | None
    tenant_slug: str | None = None
    username: str | None = None
    status: str | None = None
    data: dict = field(default_factory=dict)
    remote: bool = False


# -- issue 16: pseudo-users and the finger log ------------------------------------


@dataclass(frozen=True, slots=True)
class PseudoUser:
    """A name answered by built-in or installed code (a kind), never listed as a user."""

    id: int
    tenant_id: int
    name: str
    kind: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FingerLogEntry:
    """Lookups of a user: when, through what, from which network (never an address).

    ``count`` lookups through ``channel`` from ``network``, the first at ``at``
    and the others within about a minute of it (repeats are one entry).
    """

    at: datetime
    channel: str
    network: str
    count: int = 1


@dataclass(frozen=True, slots=True)
class RecentStatus:
    """A visible user whose status changed lately (the ``recent`` pseudo-user's rows)."""

    username: str
    full_name: str
    status: str | None
    changed_at: datetime


@dataclass(frozen=True, slots=True)
class WebSession:
    """A signed-in browser (admin UI or self-service page), as stored in the database.

    The browser holds only a random token; the database holds its SHA-256
    hash (``id`` is the row, never shown). ``principal`` is rebuilt from the
    account's current row on every lookup, so a removed or changed account
    ends or changes the session at once. ``home_tenant`` is a tenant admin's
    or a user's tenant slug.
    """

    id: int
    kind: str  # "admin" or "user"
    principal: Principal
    csrf_secret: str
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    home_tenant: str | None = None
    data: dict = field(default_factory=dict)
