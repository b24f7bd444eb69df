"""Reading the audit trail (writing it is every other use case's job)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from fingerplat.domain import rules
from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.model import AuditEvent, AuditQuery, Context
from fingerplat.service import permissions
from fingerplat.service.base import ServiceBase

MAX_AUDIT_PAGE = 1000


class AuditUseCases(ServiceBase):
    async def audit_log(
        self, ctx: Context, query: AuditQuery, *, all_tenants: bool = False
    ) -> Sequence[AuditEvent]:
        """Audit events, newest first. ``all_tenants`` is for platform admins only."""
        if not 1 <= query.limit <= MAX_AUDIT_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_AUDIT_PAGE}")
        if query.username is not None:
            query = replace(query, username=rules.username(query.username))
        if all_tenants:
            if not permissions.can_read_audit(ctx.principal, None):
                await self._deny(ctx, "audit.read", "audit", tenant=None,
                                 message="only platform admins may read every tenant's audit")
            async with self.uow(readonly=True) as repo:
                return await repo.audit(replace(query, tenant=None))
        async with self.uow(readonly=True) as repo:
            tenant = await self._tenant(repo, query.tenant)
            if not permissions.can_read_audit(ctx.principal, tenant.id):
                await self._deny(ctx, "audit.read", f"tenant:{tenant.slug}", tenant=tenant,
                                 message=f"not an admin of tenant {tenant.slug!r}")
            # By the tenant's id: events of an earlier tenant that had this slug
            # (removed since) are not this tenant's.
            return await repo.audit(replace(query, tenant=tenant.slug), tenant_id=tenant.id)
