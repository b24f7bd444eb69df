"""One IRC bot per deployment: which node runs a bot is decided by an advisory lock.

Several ``serve`` nodes on one PostgreSQL database may share a configuration
with ``[[irc]]`` bots; two copies of a bot would fight over its nick and
answer every query twice. So each bot has a PostgreSQL advisory lock whose
key is a stable hash of what makes it the same bot (tenant, server, port,
nick); the node holding the lock runs the bot, the others ask again every
:data:`LEADERSHIP_INTERVAL` seconds. When the holder dies its database
connection ends, PostgreSQL releases the lock, and another node takes the
bot over at its next try. A holder that cannot reach the database any more
leaves IRC as well (it can no longer prove it is the only one).

The IRC adapter never sees the database: the composition root hands it
:class:`BotLeadership` as its ``should_run`` callable. On SQLite there is
only ever one node, so no leadership is used and every bot runs.
"""

from __future__ import annotations

import hashlib
import logging

from fingerplat.config import IrcConfig
from fingerplat.repository.advisory import AdvisoryLock, create_lock_engine

log = logging.getLogger("fingerplat.leadership")

# How often a node without the lock asks for it, and a node with it checks
# that its lock connection is alive: the failover time is about this plus
# the time to connect to the IRC server.
LEADERSHIP_INTERVAL = 2.0


def bot_identity(cfg: IrcConfig) -> str:
    """What makes two ``[[irc]]`` entries (on any node) the same bot."""
    return "\0".join((
        "fingerplat-irc-bot",
        cfg.tenant.strip().lower(),
        cfg.server.strip().lower(),
        str(cfg.port),
        cfg.nick.lower(),
    ))


def bot_lock_key(cfg: IrcConfig) -> int:
    """A signed 64-bit advisory lock key, the same on every node and every release.

    ``hash()`` is salted per process, so a fixed hash function is used.
    """
    digest = hashlib.blake2b(bot_identity(cfg).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class BotLeadership:
    """The IRC adapter's ``should_run``: True while this node holds the bot's lock."""

    def __init__(self, database_url: str, *, connect_timeout: float,
                 command_timeout: float) -> None:
        self.engine = create_lock_engine(database_url, connect_timeout=connect_timeout,
                                         command_timeout=command_timeout)
        self.timeout = float(connect_timeout)
        self.locks: dict[int, AdvisoryLock] = {}
        self.standing_by: set[int] = set()  # said "another node runs it" (once per wait)

    async def __call__(self, cfg: IrcConfig) -> bool:
        key = bot_lock_key(cfg)
        lock = self.locks.get(key)
        if lock is None:
            lock = self.locks[key] = AdvisoryLock(self.engine, key, timeout=self.timeout)
        had = lock.held
        held = await lock.try_acquire()
        label = f"{cfg.nick}@{cfg.server}:{cfg.port}"
        if held and not had:
            log.info("irc %s: this node runs the bot (advisory lock %d)", label, key,
                     extra={"bot": label, "lock_key": key})
        elif had and not held:
            log.warning("irc %s: lost the bot's lock (database connection gone); leaving IRC",
                        label, extra={"bot": label, "lock_key": key})
        if held:
            self.standing_by.discard(key)
        elif not had and key not in self.standing_by:
            self.standing_by.add(key)
            log.info("irc %s: another node runs the bot; this node stands by (advisory lock %d)",
                     label, key, extra={"bot": label, "lock_key": key})
        return held

    async def close(self) -> None:
        """Release every lock (after the bots have left IRC) so another node takes over."""
        for lock in self.locks.values():
            await lock.release()
        self.locks.clear()
        await self.engine.dispose()
