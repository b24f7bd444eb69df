"""Running the Alembic migrations from code, and checking a database is current.

Every CLI command checks the schema before it runs, so that check must not
import Alembic (a tenth of a second of start-up): the newest revision is the
constant :data:`SCHEMA_REVISION` (tests/integration/test_schema.py checks it
against Alembic's own head) and the current one is read with one query.
Alembic is imported only to migrate.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

if TYPE_CHECKING:
    from alembic.config import Config

# The newest file in alembic/versions. Adding a migration means changing this.
SCHEMA_REVISION = "0003"


def script_location() -> Path:
    """The migrations folder.

    ``alembic/`` in a checkout; the ``fingerplat_migrations`` package when installed.
    """
    spec = importlib.util.find_spec("fingerplat_migrations")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if (Path(location) / "env.py").exists():
                return Path(location)
    return Path(__file__).resolve().parents[2] / "alembic"


def _config(connection: Connection | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(script_location()))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    return SCHEMA_REVISION


def alembic_head_revision() -> str:
    """The head as Alembic computes it from the files (for the test of the constant)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


async def current_revision(engine: AsyncEngine) -> str | None:
    def _current(connection: Connection) -> str | None:
        if not inspect(connection).has_table("alembic_version"):
            return None
        return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()

    async with engine.connect() as conn:
        return await conn.run_sync(_current)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    from alembic import command

    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.upgrade(_config(c), revision))


async def downgrade(engine: AsyncEngine, revision: str) -> None:
    from alembic import command

    async with engine.begin() as conn:
        await conn.run_sync(lambda c: command.downgrade(_config(c), revision))


async def is_current(engine: AsyncEngine) -> bool:
    return await current_revision(engine) == head_revision()
