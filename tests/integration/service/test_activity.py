"""Status changes per day for a tenant's administrators (the admin UI's chart)."""

from __future__ import annotations

from datetime import date

from fingerplat.domain.model import Context
from fingerplat.service import FingerplatService
from tests.integration.service.conftest import Clock


async def test_changes_are_counted_per_utc_day_with_every_day_present(
    clocked: FingerplatService, clock: Clock, operator: Context
):
    svc = clocked
    await svc.tenants.create_tenant(operator, "acme")
    await svc.users.add_user(operator, "acme", "alice")
    await svc.users.add_user(operator, "acme", "bob")
    await svc.users.add_user(operator, None, "carol")  # another tenant: not counted
    clock.now = clock.now.replace(hour=23, minute=59)  # 2026-11-21, late
    await svc.users.set_status(operator, "acme", "alice", "one")
    await svc.users.set_status(operator, None, "carol", "elsewhere")
    clock.advance(minutes=2)  # 2026-11-22 00:01 UTC: the next day
    await svc.users.set_status(operator, "acme", "alice", "two")
    await svc.users.set_status(operator, "acme", "bob", "three")
    await svc.users.clear_status(operator, "acme", "bob")  # a clear is a change too
    clock.advance(days=2)

    days = await svc.activity.status_activity(operator, "acme", days=5)
    assert days == [(date(2026, 11, 20), 0), (date(2026, 11, 21), 1), (date(2026, 11, 22), 3),
                    (date(2026, 11, 23), 0), (date(2026, 11, 24), 0)]
    assert len(await svc.activity.status_activity(operator, "acme")) == 30
