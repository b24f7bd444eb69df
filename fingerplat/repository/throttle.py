"""Rows of ``auth_throttle``: the shared counters of the authentication throttle.

:meth:`ThrottleRows.lock` is what makes the throttle hold across workers and
nodes: it creates the keys' rows if missing and locks them for the rest of the
transaction (``SELECT ... FOR UPDATE`` on PostgreSQL; on SQLite the unit of
work's ``BEGIN IMMEDIATE`` already holds the database's write lock), so two
attempts on one key are counted one after the other, never both from the same
old value. Keys are locked in sorted order so two transactions never wait on
each other in a circle.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from fingerplat.domain.throttle import Counter
from fingerplat.repository.dialects import upsert_insert
from fingerplat.repository.schema import auth_throttle

_t = auth_throttle.c


def _counter(row: RowMapping) -> Counter:
    return Counter(
        key=row["key"],
        window_start=row["window_start"],
        attempts=row["attempts"],
        failures=row["failures"],
        audited=row["audited"],
        blocked_until=row["blocked_until"],
        updated_at=row["updated_at"],
        last_channel=row["last_channel"],
        summarised_at=row["summarised_at"],
    )


class ThrottleRows:
    """Queries on ``auth_throttle`` in the current unit of work's transaction."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    async def peek(self, keys: Sequence[str]) -> dict[str, Counter]:
        """The keys' rows as they are, without creating or locking anything."""
        result = await self.conn.execute(select(auth_throttle).where(_t.key.in_(list(keys))))
        return {row["key"]: _counter(row) for row in result.mappings()}

    async def lock(self, keys: Sequence[str], now: datetime) -> dict[str, Counter]:
        """The keys' rows, created empty when missing, locked until commit."""
        ordered = sorted(set(keys))
        insert = upsert_insert(self.conn)
        await self.conn.execute(
            insert(auth_throttle).on_conflict_do_nothing(index_elements=["key"]),
            [{"key": key, "window_start": now, "attempts": 0, "failures": 0, "audited": 0,
              "blocked_until": None, "updated_at": now, "last_channel": None,
              "summarised_at": None}
             for key in ordered],
        )
        result = await self.conn.execute(
            select(auth_throttle).where(_t.key.in_(ordered)).order_by(_t.key).with_for_update()
        )
        return {row["key"]: _counter(row) for row in result.mappings()}

    async def save(self, counter: Counter) -> None:
        await self.conn.execute(
            update(auth_throttle).where(_t.key == counter.key).values(
                window_start=counter.window_start,
                attempts=counter.attempts,
                failures=counter.failures,
                audited=counter.audited,
                blocked_until=counter.blocked_until,
                updated_at=counter.updated_at or counter.window_start,
                last_channel=counter.last_channel,
                summarised_at=counter.summarised_at,
            )
        )

    async def drop(self, keys: Sequence[str]) -> None:
        await self.conn.execute(delete(auth_throttle).where(_t.key.in_(list(keys))))

    async def due(self, started_before: datetime, summarised_before: datetime,
                  limit: int) -> list[str]:
        """Keys the sweep has work for: an ended window, or failures owed a summary row."""
        result = await self.conn.execute(
            select(_t.key).where(or_(
                _t.window_start < started_before,
                and_(_t.failures > _t.audited,
                     or_(_t.summarised_at.is_(None), _t.summarised_at <= summarised_before)),
            )).order_by(_t.window_start).limit(limit)
        )
        return list(result.scalars())
