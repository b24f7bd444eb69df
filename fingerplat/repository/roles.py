"""Grants for the runtime role of a two-role PostgreSQL deployment.

The schema owner runs ``fingerplat db upgrade``; the service runs as a role
that may use the application's tables but may only append to and read the
audit trail (deploy/postgres/roles.sql creates both). After an upgrade the
grants are brought up to date with the statements below, the same as
deploy/postgres/grants.sql.
"""

from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from fingerplat.domain.errors import InvalidInput

# A plain, unquoted PostgreSQL role name (what deploy/postgres/roles.sql creates).
ROLE_RE = re.compile(r"[a-z_][a-z0-9_]{0,62}")

GRANTS = (
    "GRANT USAGE ON SCHEMA public TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
    "GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
    "REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON alembic_version FROM {role}",
    "REVOKE UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER ON audit_events FROM {role}",
)


def role_name(name: str) -> str:
    if not ROLE_RE.fullmatch(name):
        raise InvalidInput("a role name is 1-63 characters: lower-case ASCII letters, digits "
                           "and _, not starting with a digit")
    return name


async def grant_runtime_role(engine: AsyncEngine, role: str) -> None:
    """Give ``role`` exactly what ``fingerplat serve`` needs (PostgreSQL only)."""
    if engine.dialect.name != "postgresql":
        raise InvalidInput("--grant-to is for PostgreSQL; SQLite has no roles")
    quoted = '"' + role_name(role) + '"'
    async with engine.begin() as conn:
        exists = (await conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                                     {"r": role})).first()
        if exists is None:
            raise InvalidInput(f"no such PostgreSQL role: {role!r} "
                               "(deploy/postgres/roles.sql creates it)")
        for statement in GRANTS:
            await conn.execute(text(statement.format(role=quoted)))
