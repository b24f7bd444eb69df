"""SQL of the audit trail: chained appends, filtered reads, and the walk for ``verify``.

An append locks its chain's head row (``audit_chain_heads``; ``SELECT … FOR
UPDATE`` on PostgreSQL, while SQLite write transactions are serialised by
``BEGIN IMMEDIATE`` already), hashes the event onto the head's hash
(:mod:`fingerplat.domain.audit_chain`), inserts it and moves the head, all in
the transaction of the change it records. Appends to one chain are therefore
serialised in commit order, and ids grow along each chain on both databases
and across nodes: the id is drawn after the head is locked.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy import text as sql_text
from sqlalchemy.ext.asyncio import AsyncConnection

from fingerplat.domain import audit_chain
from fingerplat.domain.model import AuditEvent, AuditQuery
from fingerplat.repository.dialects import upsert_insert
from fingerplat.repository.schema import audit_chain_heads, audit_events, tenants

_HEAD = audit_chain_heads
_PAGE = 2000


def _utc(at: datetime) -> datetime:
    """UTC, as SQLite stores the wall time only and hands it back as UTC."""
    return at if at.tzinfo is UTC else at.astimezone(UTC)


async def lock_head(conn: AsyncConnection, chain: str) -> tuple[int, str]:
    """Lock the chain's head until the commit; (last id, last hash), (0, GENESIS) if new."""
    postgres = conn.dialect.name == "postgresql"
    stmt = select(_HEAD.c.last_id, _HEAD.c.last_hash).where(_HEAD.c.chain == chain)
    if postgres:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).first()
    if row is not None:
        return int(row[0]), str(row[1])
    values = {"chain": chain, "last_id": 0, "last_hash": audit_chain.GENESIS}
    if postgres:
        # Two first writers of a chain: the second waits on the key, then locks.
        await conn.execute(upsert_insert(conn)(_HEAD).values(**values).on_conflict_do_nothing())
        row = (await conn.execute(stmt)).first()
        assert row is not None
        return int(row[0]), str(row[1])
    await conn.execute(insert(_HEAD).values(**values))
    return 0, audit_chain.GENESIS


async def _move_head(conn: AsyncConnection, chain: str, last_id: int, last_hash: str) -> None:
    await conn.execute(update(_HEAD).where(_HEAD.c.chain == chain)
                       .values(last_id=last_id, last_hash=last_hash))


async def append(conn: AsyncConnection, values: Mapping[str, Any]) -> int:
    """Append one event to its chain; returns its id."""
    row = dict(values)
    row.setdefault("tenant_id", None)
    row["at"] = _utc(row["at"])
    chain = audit_chain.chain_key(row["tenant_id"])
    _, prev = await lock_head(conn, chain)
    row["prev_hash"] = prev
    row["hash"] = audit_chain.event_hash(row, prev)
    if conn.dialect.name == "postgresql":
        # One round trip: insert the event and move the head to it.
        added = insert(audit_events).values(**row).returning(audit_events.c.id).cte("added")
        moved = (update(_HEAD).where(_HEAD.c.chain == chain)
                 .values(last_id=select(added.c.id).scalar_subquery(), last_hash=row["hash"])
                 .returning(_HEAD.c.last_id))
        return int((await conn.execute(moved)).scalar_one())
    result = await conn.execute(insert(audit_events).values(**row))
    event_id = int(result.inserted_primary_key[0])
    await _move_head(conn, chain, event_id, row["hash"])
    return event_id


async def reserve_ids(conn: AsyncConnection, count: int) -> list[int]:
    """``count`` new, increasing event ids (call with the chain's head locked)."""
    if conn.dialect.name == "postgresql":
        # One array rather than a row per id (an import batch draws thousands).
        drawn = (await conn.execute(sql_text(
            "SELECT array(SELECT nextval(pg_get_serial_sequence('audit_events', 'id')) "
            "FROM generate_series(1, :n))"), {"n": count})).scalar_one()
        return sorted(drawn)
    # SQLite: this transaction holds the write lock; the next rowids are ours.
    top = (await conn.execute(sql_text("SELECT coalesce(max(id), 0) FROM audit_events"))).scalar()
    return list(range(int(top or 0) + 1, int(top or 0) + 1 + count))


async def chain_batch(
    conn: AsyncConnection, shared: audit_chain.BatchFields,
    rows: Sequence[audit_chain.BatchRow],
) -> list[tuple[int, str, str, str | None, str | None]]:
    """(id, prev_hash, hash, before, after) for a batch of new events of one chain, in
    order, ``before`` and ``after`` as the JSON text hashed; moves the chain's head
    once. The caller inserts the events (in any way)."""
    if not rows:
        return []
    chain = audit_chain.chain_key(shared.tenant_id)
    _, prev = await lock_head(conn, chain)
    ids = await reserve_ids(conn, len(rows))
    links = audit_chain.link_batch(shared, rows, prev)
    await _move_head(conn, chain, ids[-1], links[-1][1])
    return [(event_id, *link) for event_id, link in zip(ids, links, strict=True)]


def _event(r: Mapping[str, Any]) -> AuditEvent:
    return AuditEvent(
        id=r["id"], at=r["at"], tenant=r["tenant"], actor=r["actor"],
        channel=r["channel"], action=r["action"], target=r["target"],
        outcome=r["outcome"], before=r["before"], after=r["after"],
        remote_addr=r["remote_addr"], detail=r["detail"], tenant_id=r["tenant_id"],
        tenant_removed=r["tenant_id"] is not None and r["live_tenant"] is None,
        hash=r["hash"],
    )


async def read(conn: AsyncConnection, query: AuditQuery, *,
               tenant_id: int | None) -> list[AuditEvent]:
    """Events newest first; of one tenant (by its id) or, with None, of everything."""
    stmt = select(audit_events, tenants.c.id.label("live_tenant")).select_from(
        audit_events.outerjoin(tenants, tenants.c.id == audit_events.c.tenant_id))
    if tenant_id is not None:
        stmt = stmt.where(audit_events.c.tenant_id == tenant_id)
    if query.username is not None:
        stmt = stmt.where(audit_events.c.username == query.username)
    if query.action is not None:
        stmt = stmt.where(audit_events.c.action == query.action)
    if query.since is not None:
        stmt = stmt.where(audit_events.c.at >= query.since)
    if query.until is not None:
        stmt = stmt.where(audit_events.c.at < query.until)
    if query.before_id is not None:
        stmt = stmt.where(audit_events.c.id < query.before_id)
    stmt = stmt.order_by(audit_events.c.id.desc()).limit(query.limit)
    return [_event(r) for r in (await conn.execute(stmt)).mappings()]


# -- verification ------------------------------------------------------------------

async def begin_snapshot(conn: AsyncConnection) -> None:
    """Make this (just begun) transaction see one snapshot (PostgreSQL; SQLite's
    read transactions are snapshots already), so appends meanwhile do not look
    like insertions."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sql_text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))


async def chains(conn: AsyncConnection) -> dict[str, audit_chain.ChainHead | None]:
    """Every chain with events or a head, and its head (None when missing)."""
    heads: dict[str, audit_chain.ChainHead | None] = {
        r[0]: audit_chain.ChainHead(int(r[1]), str(r[2]))
        for r in await conn.execute(select(_HEAD.c.chain, _HEAD.c.last_id, _HEAD.c.last_hash))
    }
    ids = await conn.execute(select(audit_events.c.tenant_id).distinct())
    for (tenant_id,) in ids:
        heads.setdefault(audit_chain.chain_key(tenant_id), None)
    return heads


async def head(conn: AsyncConnection, chain: str) -> audit_chain.ChainHead | None:
    row = (await conn.execute(select(_HEAD.c.last_id, _HEAD.c.last_hash)
                              .where(_HEAD.c.chain == chain))).first()
    return audit_chain.ChainHead(int(row[0]), str(row[1])) if row else None


async def walk(conn: AsyncConnection, chain: str) -> AsyncIterator[audit_chain.StoredEvent]:
    """A chain's events in id order, a page at a time."""
    if chain == audit_chain.PLATFORM_CHAIN:
        where = audit_events.c.tenant_id.is_(None)
    else:
        where = audit_events.c.tenant_id == int(chain.split(":", 1)[1])
    after = -1
    while True:
        page = (await conn.execute(
            select(audit_events).where(where, audit_events.c.id > after)
            .order_by(audit_events.c.id).limit(_PAGE))).mappings().all()
        for r in page:
            yield audit_chain.StoredEvent(r["id"], r, r["prev_hash"], r["hash"])
        if len(page) < _PAGE:
            return
        after = page[-1]["id"]
