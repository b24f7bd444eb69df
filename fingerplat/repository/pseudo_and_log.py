"""SQL of issue 16: pseudo-users, the finger log and the ``recent`` rows.

A mixin of :class:`fingerplat.repository.sql.Repository`, kept in a module of
its own so the queries of one feature read together. Every statement is
parameterised; no rule lives here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, and_, delete, func, insert, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from fingerplat.domain.errors import Conflict
from fingerplat.domain.model import FingerLogEntry, PseudoUser, RecentStatus
from fingerplat.repository.schema import finger_log, pseudo_users, status_history, tenants, users

# A fixed key for the purge's transaction-level advisory lock (PostgreSQL):
# "fingerplat finger_log purge" hashed once, so every node and release agree.
PURGE_LOCK_KEY = 0x46504C50_75726765  # "FPLPurge"


FINGER_LOG_COLUMNS = ("tenant_id", "user_id", "at", "channel", "network", "count")


def _pseudo(row: Any) -> PseudoUser:
    return PseudoUser(id=row.id, tenant_id=row.tenant_id, name=row.name, kind=row.kind,
                      created_at=row.created_at)


class PseudoUserAndFingerLogQueries:
    conn: AsyncConnection

    if TYPE_CHECKING:  # provided by Repository
        async def _bulk_insert(self, table: Table, names: Sequence[str],
                               rows: Sequence[tuple[Any, ...]]) -> None: ...

    # -- pseudo-users ------------------------------------------------------------

    async def pseudo_users(self, tenant_id: int) -> list[PseudoUser]:
        rows = await self.conn.execute(
            select(pseudo_users).where(pseudo_users.c.tenant_id == tenant_id)
            .order_by(pseudo_users.c.name))
        return [_pseudo(r) for r in rows]

    async def pseudo_names_by_tenant(self) -> dict[int, dict[str, str]]:
        """Every tenant's pseudo-user names and kinds (tenants without any are absent)."""
        found: dict[int, dict[str, str]] = {}
        for tenant_id, name, kind in await self.conn.execute(
                select(pseudo_users.c.tenant_id, pseudo_users.c.name, pseudo_users.c.kind)):
            found.setdefault(int(tenant_id), {})[name] = kind
        return found

    async def pseudo_user(self, tenant_id: int, name: str) -> PseudoUser | None:
        row = (await self.conn.execute(
            select(pseudo_users).where(and_(pseudo_users.c.tenant_id == tenant_id,
                                            pseudo_users.c.name == name)))).first()
        return _pseudo(row) if row is not None else None

    async def add_pseudo_user(self, tenant_id: int, name: str, kind: str, now: datetime) -> int:
        try:
            result = await self.conn.execute(insert(pseudo_users).values(
                tenant_id=tenant_id, name=name, kind=kind, created_at=now))
        except IntegrityError as exc:
            raise Conflict(f"pseudo-user {name} already exists in this tenant") from exc
        return int(result.inserted_primary_key[0])

    async def remove_pseudo_user(self, pseudo_id: int) -> None:
        await self.conn.execute(delete(pseudo_users).where(pseudo_users.c.id == pseudo_id))

    async def tenant_timezone(self, tenant_id: int) -> str:
        value = (await self.conn.execute(
            select(tenants.c.timezone).where(tenants.c.id == tenant_id))).scalar()
        return str(value or "UTC")

    async def recent_statuses(self, tenant_id: int, since: datetime,
                              limit: int) -> list[RecentStatus]:
        """Visible users whose status changed at or after ``since``, newest change first."""
        last = (
            select(status_history.c.user_id, func.max(status_history.c.set_at).label("changed"))
            .join(users, users.c.id == status_history.c.user_id)
            .where(and_(users.c.tenant_id == tenant_id, users.c.hidden.is_(False),
                        status_history.c.set_at >= since))
            .group_by(status_history.c.user_id)
            .subquery()
        )
        rows = await self.conn.execute(
            select(users.c.username, users.c.full_name, users.c.status, last.c.changed)
            .join(last, last.c.user_id == users.c.id)
            .order_by(last.c.changed.desc(), users.c.username)
            .limit(limit))
        return [RecentStatus(username=r.username, full_name=r.full_name, status=r.status,
                             changed_at=r.changed) for r in rows]

    # -- finger log --------------------------------------------------------------

    async def existing_user_ids(self, ids: Sequence[int]) -> set[int]:
        """Which of these user ids still exist (finger log rows of removed users are dropped)."""
        if not ids:
            return set()
        return set((await self.conn.execute(
            select(users.c.id).where(users.c.id.in_(sorted(set(ids)))))).scalars())

    async def add_finger_log(self, rows: Sequence[tuple[int, int, datetime, str, str, int]]
                             ) -> list[int]:
        """New rows ``(tenant_id, user_id, at, channel, network, count)``; their ids, in order.

        The ids are taken first (:meth:`_new_finger_log_ids`), so the rows go
        through the repository's bulk insert (COPY on PostgreSQL, sqlite3's
        executemany): SQLAlchemy's INSERT ... RETURNING of many rows costs tens
        of microseconds of Python a row, and a server writes a row for every
        user, channel and network fingered each minute. The writer sets a row's
        count later by its id (:meth:`set_finger_log_counts`). Every user must
        exist (see :meth:`existing_user_ids`), or the foreign key refuses the
        batch (Conflict).
        """
        if not rows:
            return []
        ids = await self._new_finger_log_ids(len(rows))
        await self._bulk_insert(finger_log, ("id", *FINGER_LOG_COLUMNS),
                                [(row_id, *row) for row_id, row in zip(ids, rows, strict=True)])
        return ids

    async def _new_finger_log_ids(self, n: int) -> list[int]:
        """``n`` unused ids of ``finger_log``, for rows this unit inserts.

        PostgreSQL: from the column's sequence, as a default would. SQLite: the
        ones after the largest, which is safe because a writing unit holds the
        database's write lock from its BEGIN IMMEDIATE (fingerplat/repository/uow.py):
        nobody else inserts before this unit commits.
        """
        if self.conn.dialect.name == "postgresql":
            result = await self.conn.execute(
                text("SELECT nextval(pg_get_serial_sequence('finger_log', 'id')) "
                     "FROM generate_series(1, :n)"), {"n": n})
            return [int(row_id) for row_id in result.scalars()]
        top = (await self.conn.execute(
            select(func.coalesce(func.max(finger_log.c.id), 0)))).scalar_one()
        return list(range(int(top) + 1, int(top) + n + 1))

    async def set_finger_log_counts(self, counts: Sequence[tuple[int, int]]) -> None:
        """Set the ``count`` of rows by id: ``(id, count)`` pairs, in one statement.

        PostgreSQL: one UPDATE joined to the two arrays (no per-row
        parameters in Python); elsewhere the driver's executemany. A row
        deleted since (its user removed, purged) is simply not updated.
        """
        if not counts:
            return
        if self.conn.dialect.name == "postgresql":
            await self.conn.execute(
                text('UPDATE finger_log AS f SET "count" = v.n '
                     "FROM unnest(CAST(:ids AS BIGINT[]), CAST(:ns AS INTEGER[])) AS v(id, n) "
                     "WHERE f.id = v.id"),
                {"ids": [row_id for row_id, _ in counts], "ns": [n for _, n in counts]})
            return
        await self._bulk_update(finger_log, "id",
                                [{"id": row_id, "count": n} for row_id, n in counts])

    async def finger_log(self, user_id: int, *, since: datetime,
                         limit: int) -> list[FingerLogEntry]:
        rows = await self.conn.execute(
            select(finger_log.c.at, finger_log.c.channel, finger_log.c.network,
                   finger_log.c.count)
            .where(and_(finger_log.c.user_id == user_id, finger_log.c.at >= since))
            .order_by(finger_log.c.at.desc(), finger_log.c.id.desc())
            .limit(limit))
        return [FingerLogEntry(at=r.at, channel=r.channel, network=r.network, count=r.count)
                for r in rows]

    async def purge_finger_log(self, before: datetime) -> int | None:
        """Delete lookups older than ``before``; None when another node is purging now.

        On PostgreSQL a transaction-level advisory lock makes the purge one
        node at a time (it is released by the commit); SQLite has one writer.
        """
        if self.conn.dialect.name == "postgresql":
            got = (await self.conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"),
                                           {"key": PURGE_LOCK_KEY})).scalar_one()
            if not got:
                return None
        result = await self.conn.execute(delete(finger_log).where(finger_log.c.at < before))
        return int(result.rowcount or 0)
