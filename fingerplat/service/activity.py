"""How busy a tenant is: status changes per day, for its administrators.

The admin UI draws it as a small chart on each tenant's page, because people
would rather look than read; the numbers come from the status history, so
they are exact and need nothing kept on the side.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from fingerplat.domain.audit_actions import AuditAction
from fingerplat.domain.model import Context
from fingerplat.service import permissions
from fingerplat.service.base import UseCase

MAX_ACTIVITY_DAYS = 366


class ActivityUseCases(UseCase):
    async def status_activity(
        self, ctx: Context, tenant_name: str | None, *, days: int = 30
    ) -> list[tuple[date, int]]:
        """Status changes per UTC day over the last ``days`` days, oldest first.

        Every day is present (0 when nothing changed), today included. Only the
        tenant's administrators may ask: it tells when its people were active.
        """
        days = max(1, min(days, MAX_ACTIVITY_DAYS))
        today = self.clock().date()
        first = today - timedelta(days=days - 1)
        async with self._uow(readonly=True) as repo:
            tenant = await self._tenant(repo, tenant_name)
            await self._require(ctx, lambda p: permissions.can_read_audit(p, tenant.id),
                                AuditAction.ACTIVITY_READ, f"tenant:{tenant.slug}",
                                tenant=tenant.slug,
                                message=f"not an admin of tenant {tenant.slug!r}")
            since = datetime.combine(first, time.min, tzinfo=self.clock().tzinfo)
            counts = await repo.status_changes_per_day(tenant.id, since)
        return [(day, counts.get(day.isoformat(), 0))
                for day in (first + timedelta(days=n) for n in range(days))]
