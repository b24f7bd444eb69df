"""The embedded SQLite database: created and migrated on first use.

The embedded default must work on a bare machine with no set-up step, so
``serve`` and every CLI command call :func:`prepare_sqlite` instead of refusing
an empty or older SQLite file (PostgreSQL is never migrated implicitly). Kept
out of the server runtime so that a CLI command does not import the adapters.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine

from fingerplat.domain.errors import Unavailable
from fingerplat.repository import migrations
from fingerplat.repository.engine import sqlite_file
from fingerplat.repository.uow import translate_db_error


@dataclass(frozen=True)
class PreparedSqlite:
    """Where the SQLite file is and whether it was ``created``, ``upgraded`` or just ``using``."""

    where: str
    state: str

    @property
    def line(self) -> str:
        return f"database: SQLite {self.where} ({self.state})"


async def prepare_sqlite(engine: AsyncEngine, database_url: str) -> PreparedSqlite:
    """Create and migrate an embedded SQLite database; say where it is and what was done."""
    path = sqlite_file(database_url)
    existed = path is not None and path.exists()
    try:
        current = await migrations.current_revision(engine)
        if current != migrations.head_revision():
            await migrations.upgrade(engine)
    except Exception as error:
        mapped = translate_db_error(error)
        raise (mapped or Unavailable(f"cannot open SQLite database: {error}")) from error
    where = str(path) if path else "in memory"
    state = "using" if existed and current else "created"
    if existed and current and current != migrations.head_revision():
        state = "upgraded"
    return PreparedSqlite(where, state)
