"""The INSERT with ON CONFLICT of the database a connection is on.

Imported where a statement is built rather than at module top, so a command
on SQLite does not load SQLAlchemy's PostgreSQL dialect (19 modules, a
tenth of ``fingerplat user set``'s start-up). The engine has already imported
the dialect it connects with, so the import here costs a dictionary look-up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection


def upsert_insert(conn: AsyncConnection) -> Any:
    """``insert`` of conn's dialect: the one whose statements have ``on_conflict_do_*``."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert
