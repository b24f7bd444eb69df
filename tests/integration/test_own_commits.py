"""The SQLite read cache guard lets the finger log's own commits through, nothing else.

A real SQLite file in WAL mode, a real second writer (sqlite3, as the CLI
would be), and the service's finger log writer.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime

from fingerplat.domain.model import Context
from fingerplat.repository.engine import sqlite_file
from fingerplat.repository.own_commits import OwnCommits
from fingerplat.repository.sqlite_watch import sqlite_change_token
from fingerplat.service import FingerplatService


async def test_own_finger_log_commits_keep_the_cache(db_factory, operator: Context) -> None:
    url = await db_factory.make("sqlite")
    from fingerplat.repository.engine import create_engine

    engine = create_engine(url)
    service = FingerplatService(engine)
    try:
        alice = await service.users.add_user(operator, None, "alice")
        tenant = await service.public.resolve_tenant(None)
        path = sqlite_file(url)
        assert path is not None
        guard = service.finger_log.own_commits = OwnCommits(sqlite_change_token(path))
        cache = service.enable_read_cache(guard=guard)
        assert await service.public.public_user(tenant, "alice") is not None
        hits = cache.hits
        row = (tenant.id, alice.id, datetime.now(UTC), "finger", "127.0.0.0/24", 1)

        for _ in range(3):  # our own batches: the cached user stays
            await service.finger_log.write_finger_log([row])
            cache._guard_checked = False  # a new event-loop iteration
            assert await service.public.public_user(tenant, "alice") is not None
        assert cache.hits == hits + 3
        assert guard.ignored == 3

        # Another process writes: everything is dropped, and its change is seen.
        other = sqlite3.connect(path)
        other.execute("UPDATE users SET status = 'from elsewhere' WHERE username = 'alice'")
        other.commit()
        other.close()
        cache._guard_checked = False
        user = await service.public.public_user(tenant, "alice")
        assert user is not None and user.status == "from elsewhere"

        # Our batch and a foreign commit between two looks: still dropped.
        await service.finger_log.write_finger_log([row])
        other = sqlite3.connect(path)
        other.execute("UPDATE users SET status = 'again' WHERE username = 'alice'")
        other.commit()
        other.close()
        cache._guard_checked = False
        user = await service.public.public_user(tenant, "alice")
        assert user is not None and user.status == "again"
    finally:
        service.disable_read_cache()
        await engine.dispose()
