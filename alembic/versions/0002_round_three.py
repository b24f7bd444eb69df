"""Round three: audit identity and hash chain, database sessions and throttles,
status expiry, public fields, networks, pseudo-users, the finger log, user passwords.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-07

Each section belongs to one feature; schema.py has the same sections.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op
from fingerplat.repository.schema import Id, UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    ts = UTCDateTime()

    # -- status expiry / public fields / networks (issue 15) -------------------------
    op.add_column("tenants", sa.Column("timezone", sa.String(64), nullable=False,
                                       server_default="UTC"))
    op.add_column("tenants", sa.Column("public_fields", sa.JSON, nullable=True))
    op.add_column("tenants", sa.Column("trusted_networks", sa.JSON, nullable=True))
    op.add_column("tenants", sa.Column("rejected_networks", sa.JSON, nullable=True))
    op.add_column("users", sa.Column("status_expires_at", ts, nullable=True))
    op.add_column("status_history", sa.Column("expires_at", ts, nullable=True))
    # The expiry sweeper asks every second which statuses are due.
    op.create_index("ix_users_status_expires_at", "users", ["status_expires_at"])

    # -- finger log / self-service / pseudo-users (issue 16) -------------------------
    op.add_column("tenants", sa.Column("finger_log", sa.Boolean, nullable=False,
                                       server_default=sa.false()))
    op.add_column("tenants", sa.Column("self_edit_fields", sa.JSON, nullable=True))
    op.add_column("users", sa.Column("finger_log", sa.Boolean, nullable=False,
                                     server_default=sa.false()))
    op.add_column("users", sa.Column("password_hash", sa.String(200), nullable=True))
    op.create_table(
        "pseudo_users",
        sa.Column("id", Id, nullable=False),
        sa.Column("tenant_id", Id, nullable=False),
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pseudo_users"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_pseudo_users_tenant_id_tenants"),
        sa.UniqueConstraint("tenant_id", "name", name="uq_pseudo_users_tenant_id_name"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "finger_log",
        sa.Column("id", Id, nullable=False),
        sa.Column("tenant_id", Id, nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("at", ts, nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("network", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_finger_log"),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], ondelete="CASCADE",
                                name="fk_finger_log_tenant_id_tenants"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_finger_log_user_id_users"),
    )
    op.create_index("ix_finger_log_user_id_at", "finger_log", ["user_id", "at"])
    op.create_index("ix_finger_log_at", "finger_log", ["at"])

    # -- sessions and throttles in the database (issue 13) ---------------------------
    op.create_table(
        "web_sessions",
        sa.Column("id", Id, nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("admin_id", Id, nullable=True),
        sa.Column("user_id", Id, nullable=True),
        sa.Column("csrf_secret", sa.String(64), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("last_seen_at", ts, nullable=False),
        sa.Column("expires_at", ts, nullable=False),
        sa.Column("data", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_web_sessions"),
        sa.ForeignKeyConstraint(["admin_id"], ["admins.id"], ondelete="CASCADE",
                                name="fk_web_sessions_admin_id_admins"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_web_sessions_user_id_users"),
        sa.UniqueConstraint("token_hash", name="uq_web_sessions_token_hash"),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"])
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_index("ix_web_sessions_admin_id", "web_sessions", ["admin_id"])
    op.create_table(
        "server_keys",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_server_keys"),
    )
    op.create_table(
        "auth_throttle",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("window_start", ts, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("failures", sa.Integer, nullable=False),
        sa.Column("audited", sa.Integer, nullable=False),
        sa.Column("blocked_until", ts, nullable=True),
        sa.Column("updated_at", ts, nullable=False),
        sa.Column("last_channel", sa.String(16), nullable=True),
        sa.Column("summarised_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_auth_throttle"),
    )
    op.create_index("ix_auth_throttle_window_start", "auth_throttle", ["window_start"])

    # -- tenant identity and hash chain of the audit trail (issue 12) ----------------
    # New columns only here; backfilling existing rows (tenant_id, the chain) and
    # any trigger changes belong to this section too.
    op.add_column("audit_events", sa.Column("tenant_id", Id, nullable=True))
    op.add_column("audit_events", sa.Column("prev_hash", sa.String(64), nullable=True))
    op.add_column("audit_events", sa.Column("hash", sa.String(64), nullable=True))
    op.create_table(
        "audit_chain_heads",
        sa.Column("chain", sa.String(40), nullable=False),
        sa.Column("last_id", Id, nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("chain", name="pk_audit_chain_heads"),
    )
    op.create_index("ix_audit_events_chain", "audit_events", ["tenant_id", "id"])
    _backfill_audit_identity_and_chain()
    if op.get_bind().dialect.name == "sqlite":
        # REPLACE / INSERT OR REPLACE delete the old row without firing DELETE
        # triggers; refuse any insert that names an existing id instead.
        op.execute(_SQLITE_NO_REPLACE)


# -- tenant identity and hash chain of the audit trail (issue 12) --------------------

_SQLITE_NO_REPLACE = """
CREATE TRIGGER audit_events_no_replace BEFORE INSERT ON audit_events
WHEN EXISTS (SELECT 1 FROM audit_events WHERE id = NEW.id)
BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END
"""
_SQLITE_NO_UPDATE = (
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events "
    "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
)
_BACKFILL_PAGE = 2000


def _backfill_audit_identity_and_chain() -> None:
    """Give existing events their tenant's id and chain them, with the append-only
    trigger out of the way for this one transaction (the migration runs as the
    schema owner; on SQLite the trigger is dropped and created again).

    An event gets the id of the tenant that has its slug now only if that tenant
    existed when the event was written (or is the default tenant, which cannot
    be removed): older events with that slug belonged to a removed tenant and
    stay with no tenant id, so a tenant that reused a slug never sees them.
    """
    from fingerplat.domain import audit_chain

    bind = op.get_bind()
    sqlite = bind.dialect.name == "sqlite"
    if sqlite:
        op.execute("DROP TRIGGER audit_events_no_update")
    else:
        op.execute("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
    op.execute(
        "UPDATE audit_events SET tenant_id = (SELECT t.id FROM tenants t "
        "WHERE t.slug = audit_events.tenant AND (t.is_default OR t.created_at <= audit_events.at))"
        " WHERE tenant IS NOT NULL"
    )
    ts = UTCDateTime()
    events = sa.table(
        "audit_events", sa.column("id", Id), sa.column("at", ts), sa.column("tenant_id", Id),
        *(sa.column(name) for name in ("tenant", "actor", "channel", "action", "target",
                                       "username", "outcome", "remote_addr", "detail")),
        sa.column("before", sa.JSON), sa.column("after", sa.JSON),
        sa.column("prev_hash"), sa.column("hash"),
    )
    heads: dict[str, tuple[int, str]] = {}
    set_hash = (
        sa.update(events).where(events.c.id == sa.bindparam("event_id"))
        .values(prev_hash=sa.bindparam("p"), hash=sa.bindparam("h"))
    )
    after = 0
    while True:
        page = bind.execute(
            sa.select(events).where(events.c.id > after).order_by(events.c.id)
            .limit(_BACKFILL_PAGE)
        ).mappings().all()
        if not page:
            break
        updates = []
        for row in page:
            chain = audit_chain.chain_key(row["tenant_id"])
            prev = heads.get(chain, (0, audit_chain.GENESIS))[1]
            digest = audit_chain.event_hash(row, prev)
            heads[chain] = (row["id"], digest)
            updates.append({"event_id": row["id"], "p": prev, "h": digest})
        bind.execute(set_hash, updates)
        after = page[-1]["id"]
    if heads:
        op.bulk_insert(
            sa.table("audit_chain_heads", sa.column("chain"), sa.column("last_id", Id),
                     sa.column("last_hash")),
            [{"chain": c, "last_id": i, "last_hash": h} for c, (i, h) in heads.items()],
        )
    if sqlite:
        op.execute(_SQLITE_NO_UPDATE)
    else:
        op.execute("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")


def _drop_column(table: str, column: str) -> None:
    """DROP COLUMN in place (SQLite >= 3.35 has it): a batch copy would lose the
    table's AUTOINCREMENT and the audit table's triggers."""
    op.execute(f'ALTER TABLE "{table}" DROP COLUMN "{column}"')


def downgrade() -> None:
    # -- tenant identity and hash chain of the audit trail (issue 12) ----------------
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_events_no_replace")
    op.drop_index("ix_audit_events_chain", table_name="audit_events")
    op.drop_table("audit_chain_heads")
    _drop_column("audit_events", "hash")
    _drop_column("audit_events", "prev_hash")
    _drop_column("audit_events", "tenant_id")

    # -- sessions and throttles in the database (issue 13) ---------------------------
    op.drop_index("ix_auth_throttle_window_start", table_name="auth_throttle")
    op.drop_table("auth_throttle")
    op.drop_table("server_keys")
    op.drop_index("ix_web_sessions_admin_id", table_name="web_sessions")
    op.drop_index("ix_web_sessions_user_id", table_name="web_sessions")
    op.drop_index("ix_web_sessions_expires_at", table_name="web_sessions")
    op.drop_table("web_sessions")

    # -- finger log / self-service / pseudo-users (issue 16) -------------------------
    op.drop_index("ix_finger_log_at", table_name="finger_log")
    op.drop_index("ix_finger_log_user_id_at", table_name="finger_log")
    op.drop_table("finger_log")
    op.drop_table("pseudo_users")
    _drop_column("users", "password_hash")
    _drop_column("users", "finger_log")
    _drop_column("tenants", "self_edit_fields")
    _drop_column("tenants", "finger_log")

    # -- status expiry / public fields / networks (issue 15) -------------------------
    op.drop_index("ix_users_status_expires_at", table_name="users")
    _drop_column("status_history", "expires_at")
    _drop_column("users", "status_expires_at")
    _drop_column("tenants", "rejected_networks")
    _drop_column("tenants", "trusted_networks")
    _drop_column("tenants", "public_fields")
    _drop_column("tenants", "timezone")
