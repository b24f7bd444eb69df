"""The advisory lock behind "one IRC bot per deployment", on a real PostgreSQL.

PostgreSQL only: advisory locks are a PostgreSQL feature, and on SQLite
(one node by construction) no lock is used at all.
"""

from __future__ import annotations

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from fingerplat.config import IrcConfig
from fingerplat.repository.advisory import AdvisoryLock, create_lock_engine
from fingerplat.server.leadership import BotLeadership
from tests.support.databases import DatabaseFactory


@pytest.fixture
async def pg_url(db_factory: DatabaseFactory) -> str:
    return await db_factory.make("postgresql")


async def _terminate_holders(url: str, key: int) -> int:
    """What PostgreSQL does when a node dies: the lock holder's session ends."""
    parsed = make_url(url)
    conn = await asyncpg.connect(host=parsed.host, port=parsed.port or 5432,
                                 user=parsed.username, database=parsed.database)
    try:
        # A bigint key is stored as classid (high 32 bits) and objid (low 32 bits).
        unsigned = key & 0xFFFFFFFFFFFFFFFF
        return len(await conn.fetch(
            "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
            "AND classid = $1 AND objid = $2 AND granted",
            unsigned >> 32, unsigned & 0xFFFFFFFF,
        ))
    finally:
        await conn.close()


async def test_one_holder_at_a_time_and_takeover_when_the_holder_is_gone(pg_url: str):
    engine = create_lock_engine(pg_url, connect_timeout=5, command_timeout=5)
    first = AdvisoryLock(engine, 4242, timeout=5)
    second = AdvisoryLock(engine, 4242, timeout=5)
    other_key = AdvisoryLock(engine, 4343, timeout=5)
    try:
        assert await first.try_acquire() is True
        assert await second.try_acquire() is False
        assert await other_key.try_acquire() is True  # another bot, another lock
        assert await first.try_acquire() is True  # asking again keeps it
        assert await first.still_held() is True

        # The holder's connection ends (node killed, network cut): it notices...
        assert await _terminate_holders(pg_url, 4242) == 1
        assert await first.still_held() is False
        # ...and another node gets the lock at its next try.
        assert await second.try_acquire() is True
        assert await first.try_acquire() is False

        await second.release()  # a clean stop hands over at once
        assert await first.try_acquire() is True
    finally:
        for lock in (first, second, other_key):
            await lock.release()
        await engine.dispose()


async def test_bot_leadership_gives_each_bot_to_exactly_one_node(pg_url: str):
    bot = IrcConfig(server="irc.example.org", nick="fingerbot", channels=["#a"])
    node_a = BotLeadership(pg_url, connect_timeout=5, command_timeout=5)
    node_b = BotLeadership(pg_url, connect_timeout=5, command_timeout=5)
    try:
        assert await node_a(bot) is True
        assert await node_b(bot) is False
        assert await node_a(bot) is True
        await node_a.close()
        assert await node_b(bot) is True
    finally:
        await node_a.close()
        await node_b.close()


async def test_unreachable_database_means_do_not_run():
    leadership = BotLeadership("postgresql+asyncpg://postgres@127.0.0.1:1/none",
                               connect_timeout=2, command_timeout=2)
    try:
        assert await leadership(IrcConfig(server="irc.example.org")) is False
    finally:
        await leadership.close()
