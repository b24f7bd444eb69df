"""Reading the audit trail (writing it is every other use case's job)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from fingerplat.domain import audit_chain, rules
from fingerplat.domain.audit_actions import AuditAction
from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.model import AuditEvent, AuditQuery, Context
from fingerplat.service import permissions
from fingerplat.service.base import UseCase

MAX_AUDIT_PAGE = 1000


@dataclass(frozen=True, slots=True)
class ChainVerification:
    """One chain checked by :meth:`AuditUseCases.verify_audit`."""

    label: str  # "platform", "tenant acme", "removed tenant 7 (beta)"
    report: audit_chain.ChainReport

    @property
    def intact(self) -> bool:
        return self.report.problem is None


class AuditUseCases(UseCase):
    async def audit_log(
        self, ctx: Context, query: AuditQuery, *, all_tenants: bool = False
    ) -> Sequence[AuditEvent]:
        """Audit events, newest first. ``all_tenants`` is for platform admins only."""
        if not 1 <= query.limit <= MAX_AUDIT_PAGE:
            raise InvalidInput(f"limit must be between 1 and {MAX_AUDIT_PAGE}")
        if query.username is not None:
            query = replace(query, username=rules.username(query.username))
        if all_tenants:
            await self._require(ctx, lambda p: permissions.can_read_audit(p, None),
                                AuditAction.AUDIT_READ, "audit", tenant=None,
                                message="only platform admins may read every tenant's audit")
            async with self._uow(readonly=True) as repo:
                return await repo.audit(replace(query, tenant=None))
        async with self._uow(readonly=True) as repo:
            tenant = await self._tenant(repo, query.tenant)
            await self._require(ctx, lambda p: permissions.can_read_audit(p, tenant.id),
                                AuditAction.AUDIT_READ, f"tenant:{tenant.slug}",
                                tenant=tenant, message=f"not an admin of tenant {tenant.slug!r}")
            # By the tenant's id: events of an earlier tenant that had this slug
            # (removed since) are not this tenant's.
            return await repo.audit(replace(query, tenant=tenant.slug), tenant_id=tenant.id)

    async def verify_audit(self, ctx: Context,
                           tenant: str | None = None) -> list[ChainVerification]:
        """Walk the hash chain of one tenant (``tenant``) or every chain (None).

        Reads one snapshot, so events appended meanwhile are neither counted
        nor mistaken for insertions. Platform admins may check every chain, a
        tenant's admins their tenant's.
        """
        if tenant is None:
            await self._require(ctx, lambda p: permissions.can_read_audit(p, None),
                                AuditAction.AUDIT_VERIFY, "audit", tenant=None,
                                message="only platform admins may verify every tenant's audit")
        results: list[ChainVerification] = []
        async with self._uow(readonly=True) as repo:
            await repo.audit_snapshot()
            live = {t.id: t.slug for t in await repo.list_tenants()}
            if tenant is not None:
                found = await self._tenant(repo, tenant)
                await self._require(ctx, lambda p: permissions.can_read_audit(p, found.id),
                                    AuditAction.AUDIT_VERIFY, f"tenant:{found.slug}",
                                    tenant=found, message=f"not an admin of tenant {found.slug!r}")
                key = audit_chain.chain_key(found.id)
                chains = {key: await repo.audit_chain_head(key)}
            else:
                chains = await repo.audit_chains()
            for key in sorted(chains, key=_chain_order):
                walk = audit_chain.ChainWalk(key, chains[key])
                slug: str | None = None
                async for event in repo.audit_chain_events(key):
                    slug = event.fields["tenant"]
                    if not walk.feed(event):
                        break
                results.append(ChainVerification(_label(key, live, slug), walk.finish()))
        return results


def _chain_order(key: str) -> tuple[int, int]:
    if key == audit_chain.PLATFORM_CHAIN:
        return (0, 0)
    return (1, int(key.split(":", 1)[1]))


def _label(key: str, live: dict[int, str], slug: str | None) -> str:
    if key == audit_chain.PLATFORM_CHAIN:
        return "platform"
    tenant_id = int(key.split(":", 1)[1])
    if tenant_id in live:
        return f"tenant {live[tenant_id]}"
    return f"removed tenant {tenant_id}" + (f" ({slug})" if slug else "")
