"""Tenant use cases: create, change settings and domains, remove, resolve."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fingerplat.domain import expiry, rules, visibility
from fingerplat.domain.audit_actions import AuditAction
from fingerplat.domain.errors import Conflict, InvalidInput, NotFound
from fingerplat.domain.model import ChangeEvent, Context, Tenant
from fingerplat.service import permissions
from fingerplat.service.base import UseCase
from fingerplat.service.ports import Repository


def _settings(t: Tenant) -> dict[str, object]:
    return {
        "name": t.name,
        "domains": list(t.domains),
        "list_users": t.list_users,
        "forwarding": t.forwarding,
        "finger_log": t.finger_log,
    }


def _all_settings(t: Tenant) -> dict[str, object]:
    """Every setting; the audit records the later ones (issue 15) only when they change."""
    return {
        **_settings(t),
        "timezone": t.timezone,
        "public_fields": (list(visibility.PUBLIC_FIELDS) if t.public_fields is None
                          else [f for f in visibility.PUBLIC_FIELDS if f in t.public_fields]),
        "trusted_networks": list(t.trusted_networks),
        "rejected_networks": list(t.rejected_networks),
    }


def _edited(current: Sequence[str], adding: list[str], removing: list[str],
            what: str, slug: str) -> list[str] | None:
    """The new network list, or None when unchanged; removing an absent one is NotFound."""
    if not adding and not removing:
        return None
    result = list(current)
    for net in removing:
        if net not in result:
            raise NotFound(f"tenant {slug!r} has no {what} network {net}")
        result.remove(net)
    for net in adding:
        if net not in result:
            result.append(net)
    if len(result) > visibility.MAX_NETWORKS:
        raise InvalidInput(f"at most {visibility.MAX_NETWORKS} {what} networks per tenant")
    return visibility.networks(result)


@dataclass(frozen=True, slots=True)
class _TenantEdit:
    """A settings change, checked before any transaction starts."""

    plain: dict[str, object]  # settings stored as given (already checked)
    networks: dict[str, list[str]]  # add_/remove_ trusted/rejected -> checked networks
    adding: list[str]  # domains
    removing: list[str]

    @property
    def routing(self) -> bool:
        """Whether it touches how the platform routes traffic (platform admins only)."""
        return bool(self.adding or self.removing) or "forwarding" in self.plain

    @classmethod
    def parse(cls, *, name: str | None, list_users: bool | None, forwarding: bool | None,
              finger_log: bool | None, timezone: str | None,
              public_fields: str | Sequence[str] | None,
              networks: dict[str, list[str] | None], add_domains: list[str] | None,
              remove_domains: list[str] | None) -> _TenantEdit:
        given: dict[str, object] = {
            "name": rules.tenant_name(name) if name is not None else None,
            "list_users": list_users,
            "forwarding": forwarding,
            "finger_log": finger_log,  # issue 16: the tenant's opt-in to "who fingered me"
            "timezone": expiry.timezone_name(timezone) if timezone is not None else None,
        }
        plain = {key: value for key, value in given.items() if value is not None}
        if public_fields is not None:
            fields = visibility.public_fields(public_fields)
            plain["public_fields"] = None if fields is None else list(fields)
        return cls(
            plain=plain,
            networks={key: visibility.networks(values or []) for key, values in networks.items()},
            adding=sorted({rules.domain(d) for d in add_domains or []}),
            removing=sorted({rules.domain(d) for d in remove_domains or []}),
        )

    def values(self, tenant: Tenant) -> dict[str, object]:
        """The columns to write, against the tenant as locked."""
        values = dict(self.plain)
        for kind, current in (("trusted", tenant.trusted_networks),
                              ("rejected", tenant.rejected_networks)):
            edited = _edited(current, self.networks[f"add_{kind}"],
                             self.networks[f"remove_{kind}"], kind, tenant.slug)
            if edited is not None:
                values[f"{kind}_networks"] = edited or None
        return values

    async def apply_domains(self, repo: Repository, tenant: Tenant) -> None:
        for d in self.removing:
            if not await repo.remove_domain(tenant.id, d):
                raise NotFound(f"tenant {tenant.slug!r} has no domain {d!r}")
        for d in self.adding:
            if d not in tenant.domains:
                await repo.add_domain(tenant.id, d)


class TenantUseCases(UseCase):
    async def resolve_tenant(self, name: str | None = None) -> Tenant:
        """Public: a tenant by slug or domain (``None``: the default tenant)."""
        return await self._read(lambda repo: self._tenant(repo, name))

    async def tenant_for_host(self, host: str) -> Tenant | None:
        """Public: the tenant owning a DNS name or slug, or None (routing helper)."""
        key = host.strip().lower().rstrip(".")
        if not key or len(key) > 253:
            return None

        async def fetch(repo: Repository) -> Tenant | None:
            tenant = await repo.tenant_by_domain(key)
            if tenant is None and rules.TENANT_SLUG_RE.fullmatch(key):
                tenant = await repo.tenant_by_slug(key)
            return tenant

        return await self._read(fetch)

    async def list_tenants(self, ctx: Context) -> list[Tenant]:
        async with self._uow(readonly=True) as repo:
            all_tenants = await repo.list_tenants()
        if permissions.is_platform_admin(ctx.principal):
            return all_tenants
        return [t for t in all_tenants if permissions.is_admin_of(ctx.principal, t.id)]

    async def get_tenant(self, ctx: Context, slug: str | None) -> Tenant:
        async with self._uow(readonly=True) as repo:
            tenant = await self._tenant(repo, slug)
            await self._require(ctx, lambda p: permissions.is_admin_of(p, tenant.id),
                                AuditAction.TENANT_READ, tenant.slug, tenant=tenant,
                                message=f"not an admin of tenant {tenant.slug!r}")
        return tenant

    async def _locked_tenant(self, repo: Repository, slug: str | None) -> Tenant:
        """Resolve a tenant, lock its row until the commit, and read it again.

        The second read is what the change is compared against, so the audit's
        "before" is exactly what the change replaced, even under concurrency.
        """
        tenant = await self._tenant(repo, slug)
        if not await repo.lock_tenant(tenant.id):
            raise NotFound(f"no such tenant: {tenant.slug!r}")
        locked = await repo.tenant_by_id(tenant.id)
        if locked is None:
            raise NotFound(f"no such tenant: {tenant.slug!r}")
        return locked

    async def create_tenant(
        self, ctx: Context, slug: str, *, name: str | None = None, domains: list[str] | None = None
    ) -> Tenant:
        slug = rules.tenant_slug(slug)
        display = rules.tenant_name(name if name else slug)
        clean_domains = sorted({rules.domain(d) for d in domains or []})
        await self._require(ctx, permissions.can_manage_tenants,
                            AuditAction.TENANT_CREATE, slug, tenant=slug,
                            message="only platform admins may create tenants")
        async with self._uow() as repo:
            if await repo.tenant_by_slug(slug) is not None:
                raise Conflict(f"tenant {slug!r} already exists")
            tenant_id = await repo.add_tenant(slug, display, self.clock())
            for d in clean_domains:
                await repo.add_domain(tenant_id, d)
            tenant = await repo.tenant_by_id(tenant_id)
            assert tenant is not None
            await self._audit(repo, ctx, AuditAction.TENANT_CREATE, slug, tenant=tenant,
                              after=_settings(tenant))
            await self._emit(repo, ChangeEvent("tenant", tenant.id, tenant.slug))
        return tenant

    async def update_tenant(
        self,
        ctx: Context,
        slug: str | None,
        *,
        name: str | None = None,
        add_domains: list[str] | None = None,
        remove_domains: list[str] | None = None,
        list_users: bool | None = None,
        forwarding: bool | None = None,
        finger_log: bool | None = None,
        timezone: str | None = None,
        public_fields: str | Sequence[str] | None = None,
        add_trusted_networks: list[str] | None = None,
        remove_trusted_networks: list[str] | None = None,
        add_rejected_networks: list[str] | None = None,
        remove_rejected_networks: list[str] | None = None,
    ) -> Tenant:
        """Change a tenant's settings; ``public_fields`` is a comma list or a list of names."""
        edit = _TenantEdit.parse(
            name=name, list_users=list_users, forwarding=forwarding, finger_log=finger_log,
            timezone=timezone, public_fields=public_fields,
            networks={"add_trusted": add_trusted_networks,
                      "remove_trusted": remove_trusted_networks,
                      "add_rejected": add_rejected_networks,
                      "remove_rejected": remove_rejected_networks},
            add_domains=add_domains, remove_domains=remove_domains,
        )
        async with self._uow() as repo:
            tenant = await self._tenant(repo, slug)
            await self._require(
                ctx, lambda p: permissions.can_update_tenant(p, tenant.id, routing=edit.routing),
                AuditAction.TENANT_UPDATE, tenant.slug, tenant=tenant,
                message="only platform admins may change domains or forwarding"
                if edit.routing and permissions.is_admin_of(ctx.principal, tenant.id)
                else f"not an admin of tenant {tenant.slug!r}",
            )
            tenant = await self._locked_tenant(repo, tenant.slug)
            values = edit.values(tenant)
            if values:
                await repo.update_tenant(tenant.id, **values)
            await edit.apply_domains(repo, tenant)
            updated = await repo.tenant_by_id(tenant.id)
            assert updated is not None
            await self._audit_settings(repo, ctx, tenant, updated)
        return updated

    async def _audit_settings(self, repo: Repository, ctx: Context, tenant: Tenant,
                              updated: Tenant) -> None:
        """Audit (and announce) a settings change, if anything changed.

        The first settings are always shown; the later ones (issue 15) only when
        they changed.
        """
        old, new = _all_settings(tenant), _all_settings(updated)
        if old == new:
            return
        first = _settings(tenant)
        keys = [*first, *(k for k in new if k not in first and old[k] != new[k])]
        await self._audit(repo, ctx, AuditAction.TENANT_UPDATE, tenant.slug, tenant=tenant,
                          before={k: old[k] for k in keys}, after={k: new[k] for k in keys})
        await self._emit(repo, ChangeEvent("tenant", tenant.id, tenant.slug))

    async def remove_tenant(self, ctx: Context, slug: str) -> None:
        async with self._uow() as repo:
            tenant = await self._tenant(repo, slug)
            await self._require(ctx, permissions.can_manage_tenants,
                                AuditAction.TENANT_REMOVE, tenant.slug, tenant=tenant,
                                message="only platform admins may remove tenants")
            if tenant.is_default:
                raise InvalidInput("the default tenant cannot be removed")
            tenant = await self._locked_tenant(repo, tenant.slug)
            users = await repo.count_users(tenant.id, include_hidden=True)
            await repo.remove_tenant(tenant.id)
            await self._audit(repo, ctx, AuditAction.TENANT_REMOVE, tenant.slug, tenant=tenant,
                              before={**_settings(tenant), "users": users})
            await self._emit(repo, ChangeEvent("tenant", tenant.id, tenant.slug,
                                               data={"removed": True}))
