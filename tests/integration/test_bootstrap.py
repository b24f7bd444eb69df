"""The composition root's database step, as serve, the CLI and the tests share it.

``open_service(prepare=True)`` on a database with no schema: SQLite is made
and migrated (and says so), PostgreSQL is refused with the command that fixes
it; on a current database it just says which one is used.
"""

from __future__ import annotations

import pytest

from fingerplat.bootstrap import open_service, wire
from fingerplat.domain.errors import SchemaOutOfDate
from tests.support.databases import DatabaseFactory


async def test_a_new_database_is_made_on_sqlite_and_refused_on_postgresql(
        db_factory: DatabaseFactory, backend: str, operator) -> None:
    url = await db_factory.empty(backend)
    if backend == "postgresql":
        with pytest.raises(SchemaOutOfDate, match="fingerplat db upgrade"):
            async with open_service(url, prepare=True):
                pass
        return
    async with open_service(url, prepare=True) as wired:
        assert wired.ready is not None
        assert (wired.ready.sqlite, wired.ready.state) == (True, "created")
        assert wired.ready.line.startswith("database: SQLite ") and "(created)" in wired.ready.line
        await wired.service.users.add_user(operator, None, "alice")
    async with open_service(url, prepare=True) as wired:  # the second use: nothing to do
        assert wired.ready is not None and wired.ready.state == "using"
        assert (await wired.service.users.get_user(operator, None, "alice")).username == "alice"


async def test_a_current_database_is_named(database_url: str, backend: str) -> None:
    wired = wire(database_url, read_pool=True, hot_reads=True)
    try:
        ready = await wired.prepare()
    finally:
        await wired.close()
    if backend == "postgresql":
        assert ready.line.endswith("(schema current)") and not ready.sqlite
        assert wired.hot_reads is None  # closed with the pools
    else:
        assert ready.state == "using"
