"""Tenants: create, settings, domains, removal, resolution; and atomic changes."""

from __future__ import annotations

import pytest

from fingerplat.domain.errors import InvalidInput, NotFound
from tests.integration.service.conftest import World, latest_audit, snapshot


async def test_create_and_resolve_by_slug_or_domain(service, operator):
    tenant = await service.tenants.create_tenant(operator, "Acme", name="Acme Corp",
                                         domains=["ACME.example.", "finger.acme.example"])
    assert (tenant.slug, tenant.name, tenant.domains) == (
        "acme", "Acme Corp", ("acme.example", "finger.acme.example"))
    assert tenant.list_users and not tenant.forwarding and not tenant.is_default
    for name in ("acme", "ACME", "acme.example", "Finger.Acme.Example."):
        assert (await service.public.resolve_tenant(name)).id == tenant.id
    assert (await service.public.resolve_tenant(None)).slug == "default"
    assert (await service.public.resolve_tenant("")).slug == "default"
    with pytest.raises(NotFound, match="no such tenant: 'initech'"):
        await service.public.resolve_tenant("initech")
    with pytest.raises(NotFound):
        await service.public.resolve_tenant("other.example")
    assert (await service.public.tenant_for_host("acme.example")).id == tenant.id
    assert (await service.public.tenant_for_host("ACME")).id == tenant.id
    assert await service.public.tenant_for_host("unknown.example") is None
    assert await service.public.tenant_for_host("") is None
    assert await service.public.tenant_for_host("x" * 300) is None
    [event] = await latest_audit(service, operator)
    assert (event.action, event.tenant, event.after["domains"]) == (
        "tenant.create", "acme", ["acme.example", "finger.acme.example"])


async def test_tenant_name_defaults_to_slug_and_listing(service, operator):
    await service.tenants.create_tenant(operator, "globex")
    assert (await service.tenants.get_tenant(operator, "globex")).name == "globex"
    assert [t.slug for t in await service.tenants.list_tenants(operator)] == ["default", "globex"]


async def test_tenant_admin_edits_basics_only(world: World):
    svc = world.service
    ctx = world.ctx("acme_admin")
    acme = await svc.tenants.update_tenant(ctx, "acme", name="Acme Ltd", list_users=False)
    assert (acme.name, acme.list_users) == ("Acme Ltd", False)
    assert [t.slug for t in await svc.tenants.list_tenants(ctx)] == ["acme"]
    assert await svc.tenants.list_tenants(world.ctx("anonymous")) == []
    assert (await svc.tenants.get_tenant(ctx, "acme.example")).slug == "acme"


async def test_default_tenant_cannot_be_removed(service, operator):
    before = await snapshot(service)
    with pytest.raises(InvalidInput, match="default tenant cannot be removed"):
        await service.tenants.remove_tenant(operator, "default")
    assert await snapshot(service) == before
    with pytest.raises(NotFound):
        await service.tenants.remove_tenant(operator, "nope")


async def test_invalid_slugs_are_refused(service, operator):
    before = await snapshot(service)
    for slug in ["-bad", "a" * 64, "with space", "ünï", ""]:
        with pytest.raises(InvalidInput, match="invalid tenant slug"):
            await service.tenants.create_tenant(operator, slug)
    assert await snapshot(service) == before
