"""Initial schema: tenants, domains, users, plans, status history, admins, tokens, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa

from alembic import op
from fingerplat.repository.schema import Id, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_PG_APPEND_ONLY = """
CREATE FUNCTION fingerplat_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    ts = UTCDateTime()
    tenants = op.create_table(
        "tenants",
        sa.Column("id", Id, primary_key=True),
        sa.Column("slug", sa.String(63), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("list_users", sa.Boolean, nullable=False),
        sa.Column("forwarding", sa.Boolean, nullable=False),
        sa.Column("is_default", sa.Boolean, nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tenants"),
        sa.UniqueConstraint("slug", name="uq_tenants_slug"),
        sqlite_autoincrement=True,  # never reuse an id (SQLite reuses the max rowid)
    )
    op.create_table(
        "tenant_domains",
        sa.Column("id", Id, nullable=False),
        sa.Column("tenant_id", Id, nullable=False),
        sa.Column("domain", sa.String(253), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_tenant_domains"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], ondelete="CASCADE",
            name="fk_tenant_domains_tenant_id_tenants",
        ),
        sa.UniqueConstraint("domain", name="uq_tenant_domains_domain"),
    )
    op.create_index("ix_tenant_domains_tenant_id", "tenant_domains", ["tenant_id"])
    op.create_table(
        "users",
        sa.Column("id", Id, nullable=False),
        sa.Column("tenant_id", Id, nullable=False),
        sa.Column("username", sa.String(32), nullable=False),
        sa.Column("full_name", sa.String(200), nullable=False),
        sa.Column("office", sa.String(200), nullable=False),
        sa.Column("phone", sa.String(200), nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("hidden", sa.Boolean, nullable=False),
        sa.Column("status", sa.String(280), nullable=True),
        sa.Column("status_set_at", ts, nullable=True),
        sa.Column("created_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_users"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], ondelete="CASCADE", name="fk_users_tenant_id_tenants"
        ),
        sa.UniqueConstraint("tenant_id", "username", name="uq_users_tenant_id_username"),
        sqlite_autoincrement=True,  # never reuse an id (SQLite reuses the max rowid)
    )
    op.create_table(
        "plans",
        sa.Column("user_id", Id, nullable=False),
        sa.Column("text", sa.Text, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_plans"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], ondelete="CASCADE", name="fk_plans_user_id_users"
        ),
    )
    op.create_table(
        "status_history",
        sa.Column("id", Id, nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("text", sa.String(280), nullable=True),
        sa.Column("set_at", ts, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_status_history"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], ondelete="CASCADE", name="fk_status_history_user_id_users"
        ),
    )
    op.create_index("ix_status_history_user_id_id", "status_history", ["user_id", "id"])
    op.create_table(
        "admins",
        sa.Column("id", Id, nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("password_hash", sa.String(200), nullable=False),
        sa.Column("tenant_id", Id, nullable=True),
        sa.Column("created_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_admins"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], ondelete="CASCADE", name="fk_admins_tenant_id_tenants"
        ),
        sa.UniqueConstraint("name", name="uq_admins_name"),
        sqlite_autoincrement=True,  # never reuse an id (SQLite reuses the max rowid)
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", Id, nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("tenant_id", Id, nullable=True),
        sa.Column("user_id", Id, nullable=True),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("expires_at", ts, nullable=True),
        sa.Column("revoked_at", ts, nullable=True),
        sa.Column("last_used_at", ts, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.ForeignKeyConstraint(
            ["tenant_id"], ["tenants.id"], ondelete="CASCADE",
            name="fk_api_tokens_tenant_id_tenants",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], ondelete="CASCADE", name="fk_api_tokens_user_id_users"
        ),
        sqlite_autoincrement=True,  # never reuse an id (SQLite reuses the max rowid)
    )
    op.create_index("ix_api_tokens_tenant_id", "api_tokens", ["tenant_id"])
    op.create_table(
        "audit_events",
        sa.Column("id", Id, nullable=False),
        sa.Column("at", ts, nullable=False),
        sa.Column("tenant", sa.String(63), nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(300), nullable=False),
        sa.Column("username", sa.String(32), nullable=True),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("before", sa.JSON, nullable=True),
        sa.Column("after", sa.JSON, nullable=True),
        sa.Column("remote_addr", sa.String(100), nullable=True),
        sa.Column("detail", sa.String(500), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_tenant_id", "audit_events", ["tenant", "id"])
    op.create_index("ix_audit_events_tenant_username", "audit_events", ["tenant", "username"])
    op.create_index("ix_audit_events_action", "audit_events", ["action"])

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(_PG_APPEND_ONLY)
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION fingerplat_audit_append_only()"
        )
        op.execute(
            "CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events "
            "FOR EACH STATEMENT EXECUTE FUNCTION fingerplat_audit_append_only()"
        )
    elif dialect == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END"
            )

    op.bulk_insert(
        tenants,
        [
            {
                "slug": "default",
                "name": "Default",
                "list_users": True,
                "forwarding": False,
                "is_default": True,
                "created_at": datetime.now(UTC),
            }
        ],
    )


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.drop_table("audit_events")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS fingerplat_audit_append_only()")
    for table in ("api_tokens", "admins", "status_history", "plans", "users", "tenant_domains",
                  "tenants"):
        op.drop_table(table)
