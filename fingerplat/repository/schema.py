"""The database schema as SQLAlchemy Core tables.

The Alembic migrations in ``alembic/versions`` create exactly this schema; a
test compares the two so they cannot drift apart.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# BIGINT on PostgreSQL; INTEGER on SQLite so that it stays the rowid alias.
# Tables whose ids name something outside the database (sessions, tokens,
# caches, change events) use sqlite_autoincrement so that SQLite never hands
# a removed row's id to a new one, as PostgreSQL sequences never do.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both databases (SQLite hands back naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use UTC-aware values")
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


Timestamp = UTCDateTime()

tenants = Table(
    "tenants",
    metadata,
    Column("id", Id, primary_key=True),
    Column("slug", String(63), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("list_users", Boolean, nullable=False),
    Column("forwarding", Boolean, nullable=False),
    Column("is_default", Boolean, nullable=False),
    Column("created_at", Timestamp, nullable=False),
    # -- 0002, status expiry / public fields / networks (issue 15) --
    Column("timezone", String(64), nullable=False, server_default="UTC"),
    Column("public_fields", JSON, nullable=True),  # null: every field is public
    Column("trusted_networks", JSON, nullable=True),  # null or []: none
    Column("rejected_networks", JSON, nullable=True),
    # -- 0002, finger log / self-service (issue 16) --
    Column("finger_log", Boolean, nullable=False, server_default=false()),
    Column("self_edit_fields", JSON, nullable=True),  # null: the default set
    sqlite_autoincrement=True,
)

tenant_domains = Table(
    "tenant_domains",
    metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("domain", String(253), nullable=False, unique=True),
    Index("ix_tenant_domains_tenant_id", "tenant_id"),
)

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("username", String(32), nullable=False),
    Column("full_name", String(200), nullable=False),
    Column("office", String(200), nullable=False),
    Column("phone", String(200), nullable=False),
    Column("project", String(200), nullable=False),
    Column("hidden", Boolean, nullable=False),
    # The current status, denormalised from status_history for the finger hot path.
    Column("status", String(280), nullable=True),
    Column("status_set_at", Timestamp, nullable=True),
    Column("created_at", Timestamp, nullable=False),
    # -- 0002, status expiry (issue 15) --
    Column("status_expires_at", Timestamp, nullable=True),
    # -- 0002, finger log / self-service (issue 16) --
    Column("finger_log", Boolean, nullable=False, server_default=false()),
    Column("password_hash", String(200), nullable=True),
    UniqueConstraint("tenant_id", "username", name="uq_users_tenant_id_username"),
    Index("ix_users_status_expires_at", "status_expires_at"),  # 0002, issue 15
    sqlite_autoincrement=True,
)

plans = Table(
    "plans",
    metadata,
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("text", Text, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
)

status_history = Table(
    "status_history",
    metadata,
    Column("id", Id, primary_key=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("text", String(280), nullable=True),
    Column("set_at", Timestamp, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("channel", String(16), nullable=False),
    # -- 0002, status expiry (issue 15) --
    Column("expires_at", Timestamp, nullable=True),
    Index("ix_status_history_user_id_id", "user_id", "id"),
)

admins = Table(
    "admins",
    metadata,
    Column("id", Id, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("password_hash", String(200), nullable=False),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    sqlite_autoincrement=True,
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Id, primary_key=True),
    Column("scope", String(16), nullable=False),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("secret_hash", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("expires_at", Timestamp, nullable=True),
    Column("revoked_at", Timestamp, nullable=True),
    Column("last_used_at", Timestamp, nullable=True),
    Index("ix_api_tokens_tenant_id", "tenant_id"),
    sqlite_autoincrement=True,
)

# Append-only. No foreign keys: an event must outlive the tenant or user it names.
audit_events = Table(
    "audit_events",
    metadata,
    Column("id", Id, primary_key=True),
    Column("at", Timestamp, nullable=False),
    Column("tenant", String(63), nullable=True),
    Column("actor", String(200), nullable=False),
    Column("channel", String(16), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(300), nullable=False),
    Column("username", String(32), nullable=True),
    Column("outcome", String(16), nullable=False),
    Column("before", JSON, nullable=True),
    Column("after", JSON, nullable=True),
    Column("remote_addr", String(100), nullable=True),
    Column("detail", String(500), nullable=False),
    # -- 0002, tenant identity and hash chain (issue 12) --
    Column("tenant_id", Id, nullable=True),  # the tenant's immutable id; no FK (outlives it)
    Column("prev_hash", String(64), nullable=True),
    Column("hash", String(64), nullable=True),
    Index("ix_audit_events_chain", "tenant_id", "id"),  # 0002: a tenant's events, a chain
    Index("ix_audit_events_tenant_id", "tenant", "id"),
    Index("ix_audit_events_tenant_username", "tenant", "username"),
    Index("ix_audit_events_action", "action"),
)

# -- 0002, tenant identity and hash chain (issue 12) ------------------------------
# The newest event of each chain (one chain per tenant id, one for the platform):
# the row lock serialises appends to a chain, and the head lets `audit verify`
# notice a removed last event.
audit_chain_heads = Table(
    "audit_chain_heads",
    metadata,
    Column("chain", String(40), primary_key=True),
    Column("last_id", Id, nullable=False),
    Column("last_hash", String(64), nullable=False),
)

# -- 0002, sessions and throttles in the database (issue 13) -----------------------
web_sessions = Table(
    "web_sessions",
    metadata,
    Column("id", Id, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),  # SHA-256 of the cookie
    Column("kind", String(16), nullable=False),  # "admin" or "user"
    Column("admin_id", Id, ForeignKey("admins.id", ondelete="CASCADE"), nullable=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=True),
    Column("csrf_secret", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("last_seen_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),  # min(idle limit, absolute limit)
    # Flash messages and a just-created token's secret (sealed with a key derived
    # from the cookie, which the database never holds): {"flashes": [...], "sealed": ...}.
    Column("data", JSON, nullable=True),
    Index("ix_web_sessions_expires_at", "expires_at"),
    Index("ix_web_sessions_user_id", "user_id"),
    Index("ix_web_sessions_admin_id", "admin_id"),
    sqlite_autoincrement=True,
)

# Random keys every worker and node must share (e.g. the key that signs the
# login forms' CSRF cookies), made by whichever process needs one first.
server_keys = Table(
    "server_keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("value", String(128), nullable=False),
    Column("created_at", Timestamp, nullable=False),
)

auth_throttle = Table(
    "auth_throttle",
    metadata,
    Column("key", String(200), primary_key=True),  # e.g. "addr:192.0.2.1", "acct:root|addr:..."
    Column("window_start", Timestamp, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("audited", Integer, nullable=False),  # failures already written one row each
    Column("blocked_until", Timestamp, nullable=True),
    Column("updated_at", Timestamp, nullable=False),
    Column("last_channel", String(16), nullable=True),  # for the auth.failures summary row
    Column("summarised_at", Timestamp, nullable=True),  # the last auth.failures row's time
    Index("ix_auth_throttle_window_start", "window_start"),  # the sweep of ended windows
)

# -- 0002, pseudo-users and the finger log (issue 16) -----------------------------
pseudo_users = Table(
    "pseudo_users",
    metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(32), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    UniqueConstraint("tenant_id", "name", name="uq_pseudo_users_tenant_id_name"),
    sqlite_autoincrement=True,
)

finger_log = Table(
    "finger_log",
    metadata,
    Column("id", Id, primary_key=True),
    Column("tenant_id", Id, ForeignKey("tenants.id", ondelete="CASCADE"), nullable=False),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("at", Timestamp, nullable=False),
    Column("channel", String(16), nullable=False),
    Column("network", String(64), nullable=False),  # /24 or /48 only, never an address
    # Lookups this row stands for: same user, channel and network within about a
    # minute of ``at`` (the first of them); alembic 0003.
    Column("count", Integer, nullable=False, server_default="1"),
    Index("ix_finger_log_user_id_at", "user_id", "at"),
    Index("ix_finger_log_at", "at"),
)
