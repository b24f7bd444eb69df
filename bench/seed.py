#!/usr/bin/env python3
"""Seed N benchmark users, each with a status, into a migrated fingerplat database.

Two methods:

* ``--method bulk`` (default): set-based SQL through fingerplat's own engine
  and schema tables (``fingerplat.repository``): one multi-row INSERT per
  chunk of users, then status history and plans copied with
  ``INSERT ... SELECT``. 100,000 users take seconds. It writes no audit
  events, which is right for a benchmark fixture and wrong for anything
  else: this is a bench tool, not an importer.
* ``--method service``: every user through ``service.users.add_user`` and
  ``set_status`` as the CLI operator, exactly as real changes happen (audit
  events and status history included). Slow (several transactions per user):
  meant for small N, to check the bulk rows look like real ones.

Users are ``PATTERN.format(i)`` for i in 0..N-1 (default ``bench000000``...)
in the default tenant unless ``--tenant`` names another (or ``--tenants M``
spreads them over M new tenants, ``t00000`` with domain
``t00000.bench.example`` and so on, user i in tenant i // ceil(N / M)); every user has a
status, every fifth a plan. The database must already be migrated
(``fingerplat db upgrade``). Works on SQLite and PostgreSQL (where it runs
ANALYZE afterwards so the planner sees the real table sizes).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, literal, select, text, update  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine  # noqa: E402

from fingerplat.domain.model import Channel, Context, Principal  # noqa: E402
from fingerplat.repository.engine import create_engine, is_sqlite  # noqa: E402
from fingerplat.repository.schema import (  # noqa: E402
    plans,
    status_history,
    tenant_domains,
    tenants,
    users,
)

CHUNK = 2000
STATUSES = (
    "in a meeting until 3",
    "working from home",
    "on the benchmark",
    "lunch",
    "away: back monday",
    "reviewing pull requests",
)
PLAN = "Plan:\n- finish the benchmark\n- write it up"


# --tenants N: tenant k is slug TENANT_SLUG.format(k) with domain TENANT_DOMAIN.format(k).
TENANT_SLUG = "t{:05d}"
TENANT_DOMAIN = "t{:05d}.bench.example"


def _user_rows(tenant_id: int | list[int], pattern: str, start: int, stop: int,
               now: datetime, per_tenant: int = 0) -> list[dict[str, object]]:
    """Rows of users ``start`` .. ``stop - 1``: all in ``tenant_id``, or with a list of
    tenant ids, user i in ``tenant_id[i // per_tenant]``."""
    return [
        {
            "tenant_id": (tenant_id[i // per_tenant] if isinstance(tenant_id, list)
                          else tenant_id),
            "username": pattern.format(i),
            "full_name": f"Bench User {i}",
            "office": f"Room {i % 500}",
            "phone": f"+1 555 {i % 10000:04d}",
            "project": "fingerplat benchmark",
            "hidden": False,
            "status": STATUSES[i % len(STATUSES)],
            "status_set_at": now - timedelta(seconds=i % 86400),
            "created_at": now,
        }
        for i in range(start, stop)
    ]


async def _tenant_id(engine: AsyncEngine, slug: str | None) -> int:
    async with engine.connect() as conn:
        stmt = select(tenants.c.id)
        stmt = stmt.where(tenants.c.slug == slug) if slug else stmt.where(tenants.c.is_default)
        row = (await conn.execute(stmt)).first()
    if row is None:
        raise SystemExit(f"seed: no tenant {slug or '(default)'}: run `fingerplat db upgrade` "
                         "first, or `fingerplat tenant add`")
    return int(row[0])


async def add_tenants(engine: AsyncEngine, count: int, now: datetime) -> list[int]:
    """``count`` new tenants with one domain each (TENANT_SLUG, TENANT_DOMAIN); their ids."""
    async with engine.begin() as conn:
        for start in range(0, count, CHUNK):
            await conn.execute(insert(tenants), [
                {"slug": TENANT_SLUG.format(k), "name": f"Bench tenant {k}", "list_users": True,
                 "forwarding": False, "is_default": False, "created_at": now}
                for k in range(start, min(count, start + CHUNK))])
        ids = dict((await conn.execute(
            select(tenants.c.slug, tenants.c.id).where(tenants.c.slug.like("t%")))).all())
        tenant_ids = [int(ids[TENANT_SLUG.format(k)]) for k in range(count)]
        for start in range(0, count, CHUNK):
            await conn.execute(insert(tenant_domains), [
                {"tenant_id": tenant_ids[k], "domain": TENANT_DOMAIN.format(k)}
                for k in range(start, min(count, start + CHUNK))])
    return tenant_ids


async def seed_bulk(engine: AsyncEngine, n: int, pattern: str, tenant: str | None,
                    spread: int = 0) -> None:
    """``spread``: put the users in that many new tenants (user i in tenant
    i // ceil(n / spread)) instead of ``tenant``."""
    now = datetime.now(UTC)
    prefix = pattern.split("{", 1)[0]
    target: int | list[int]
    per_tenant = 0
    if spread:
        target = await add_tenants(engine, spread, now)
        per_tenant = -(-n // spread)
        ours = users.c.username.startswith(prefix)
    else:
        target = await _tenant_id(engine, tenant)
        ours = (users.c.tenant_id == target) & users.c.username.startswith(prefix)
    async with engine.begin() as conn:
        for start in range(0, n, CHUNK):
            await conn.execute(insert(users), _user_rows(target, pattern, start,
                                                          min(n, start + CHUNK), now,
                                                          per_tenant))
        await conn.execute(insert(status_history).from_select(
            ["user_id", "text", "set_at", "actor", "channel"],
            select(users.c.id, users.c.status, users.c.status_set_at,
                   literal("bench:seed"), literal(Channel.IMPORT.value)).where(ours),
        ))
        await conn.execute(insert(plans).from_select(
            ["user_id", "text", "updated_at"],
            select(users.c.id, literal(PLAN), literal(now, users.c.created_at.type))
            .where(ours & (users.c.id % 5 == 0)),
        ))
    async with engine.connect() as conn:
        if is_sqlite(str(engine.url)):
            await conn.execute(text("ANALYZE"))
        else:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("ANALYZE"))
        await conn.commit()


async def seed_service(engine: AsyncEngine, n: int, pattern: str, tenant: str | None) -> None:
    from fingerplat.service import FingerplatService

    service = FingerplatService(engine)
    ctx = Context(Principal.operator("bench-seed"), Channel.CLI)
    for i in range(n):
        name = pattern.format(i)
        await service.users.add_user(ctx, tenant, name, full_name=f"Bench User {i}",
                               office=f"Room {i % 500}", project="fingerplat benchmark")
        await service.users.set_status(ctx, tenant, name, STATUSES[i % len(STATUSES)])
        if i % 5 == 0:
            await service.users.set_plan(ctx, tenant, name, PLAN)


async def count_users(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())


async def enable_finger_log(engine: AsyncEngine) -> None:
    """Opt every tenant and every user in to "who fingered me" (issue 16's bench)."""
    async with engine.begin() as conn:
        await conn.execute(update(tenants).values(finger_log=True))
        await conn.execute(update(users).values(finger_log=True))


async def seed(url: str, n: int, *, pattern: str = "bench{:06d}", tenant: str | None = None,
               method: str = "bulk", finger_log: bool = False, tenants: int = 0) -> float:
    """Seed and return the seconds it took."""
    # A bulk statement over a million rows runs for more than the default 10 s.
    engine = create_engine(url, pool_size=2, max_overflow=0, command_timeout=3600)
    began = time.monotonic()
    try:
        if method == "bulk":
            await seed_bulk(engine, n, pattern, tenant, tenants)
        else:
            await seed_service(engine, n, pattern, tenant)
        if finger_log:
            await enable_finger_log(engine)
        return time.monotonic() - began
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Seed benchmark users into a migrated database.")
    p.add_argument("database_url", help="sqlite+aiosqlite:///PATH or postgresql+asyncpg://...")
    p.add_argument("-n", "--users", type=int, default=1000)
    p.add_argument("--pattern", default="bench{:06d}", help="user name pattern (str.format)")
    p.add_argument("--tenant", default=None, help="tenant slug (default: the default tenant)")
    p.add_argument("--method", choices=("bulk", "service"), default="bulk")
    p.add_argument("--tenants", type=int, default=0,
                   help="spread the users over this many new tenants (bulk only): slug "
                        "t00000.., domain t00000.bench.example.., user i in tenant "
                        "i // ceil(users / tenants)")
    p.add_argument("--finger-log", action="store_true",
                   help="opt every tenant and user in to the finger log (who fingered me)")
    p.add_argument("--tenant-features", action="store_true",
                   help="the tenant uses public fields, a trusted and a rejected network, and "
                        "every tenth status expires (in a day: it stays set during the runs)")
    args = p.parse_args(argv)
    if "{" not in args.pattern:
        raise SystemExit("seed: --pattern needs a {} placeholder for the index")
    if args.tenants and args.method != "bulk":
        raise SystemExit("seed: --tenants works with --method bulk only")
    took = asyncio.run(seed(args.database_url, args.users, pattern=args.pattern,
                            tenant=args.tenant, method=args.method,
                            finger_log=args.finger_log, tenants=args.tenants))
    print(f"seeded {args.users} users ({args.method}) in {took:.1f}s", file=sys.stderr)
    if args.tenant_features:
        asyncio.run(use_tenant_features(args.database_url, args.tenant, args.pattern))
    return 0


async def use_tenant_features(url: str, tenant: str | None, pattern: str) -> None:
    """Issue 15's settings on the seeded tenant: what the finger headline must carry.

    Public fields without office and phone; a trusted network (the bench
    client's 127.0.0.0/8, so lists still go to it) and a rejected one it is
    not in (so every kept answer is the checked kind); an expiry on every
    tenth status (so those answers are kept with a deadline).
    """
    from fingerplat.service import FingerplatService

    engine = create_engine(url, pool_size=2, max_overflow=0, command_timeout=3600)
    try:
        service = FingerplatService(engine)
        ctx = Context(Principal.operator("bench-seed"), Channel.CLI)
        await service.tenants.update_tenant(
            ctx, tenant, public_fields="full_name,project,status,plan,history",
            add_trusted_networks=["127.0.0.0/8", "::1"],
            add_rejected_networks=["198.51.100.0/24", "2001:db8:bad::/48"],
        )
        tenant_id = await _tenant_id(engine, tenant)
        prefix = pattern.split("{", 1)[0]
        async with engine.begin() as conn:
            await conn.execute(
                users.update()
                .where((users.c.tenant_id == tenant_id) & users.c.username.startswith(prefix)
                       & (users.c.id % 10 == 0))
                .values(status_expires_at=datetime.now(UTC) + timedelta(days=1))
            )
    finally:
        await engine.dispose()


if __name__ == "__main__":
    sys.exit(main())
