"""Tenants: create, settings, domains, removal, resolution; and atomic changes."""

from __future__ import annotations

import pytest

from fingerplat.domain.errors import Conflict, InvalidInput, NotFound
from fingerplat.domain.model import AuditQuery, Channel, TokenScope
from tests.integration.service.conftest import World, latest_audit, snapshot


async def test_duplicate_slug_and_domain_conflicts_change_nothing(service, operator):
    await service.tenants.create_tenant(operator, "acme", domains=["acme.example"])
    await service.tenants.create_tenant(operator, "globex")
    before = await snapshot(service)
    with pytest.raises(Conflict, match="tenant 'acme' already exists"):
        await service.tenants.create_tenant(operator, "ACME")
    with pytest.raises(Conflict, match=r"domain acme\.example already belongs"):
        await service.tenants.create_tenant(operator, "initech", domains=["acme.example"])
    with pytest.raises(Conflict, match=r"domain acme\.example already belongs"):
        await service.tenants.update_tenant(operator, "globex", add_domains=["acme.example"])
    assert await service.public.tenant_for_host("acme.example") is not None
    assert await snapshot(service) == before
    with pytest.raises(NotFound):
        await service.public.resolve_tenant("initech")


async def test_failed_update_is_not_half_written(service, operator):
    """A rename and a list_users switch in the same call as a failing domain change."""
    await service.tenants.create_tenant(operator, "acme", domains=["acme.example"])
    await service.tenants.create_tenant(operator, "globex", domains=["globex.example"])
    before = await snapshot(service)
    events_before = await latest_audit(service, operator)
    with pytest.raises(Conflict):
        await service.tenants.update_tenant(operator, "acme", name="Renamed", list_users=False,
                                    add_domains=["new.example", "globex.example"])
    with pytest.raises(NotFound, match=r"has no domain .missing\.example."):
        await service.tenants.update_tenant(operator, "acme", name="Renamed",
                                    remove_domains=["acme.example", "missing.example"])
    assert await snapshot(service) == before
    assert await latest_audit(service, operator) == events_before
    acme = await service.public.resolve_tenant("acme")
    assert (acme.name, acme.list_users, acme.domains) == ("acme", True, ("acme.example",))


async def test_update_settings_and_domains(service, operator):
    await service.tenants.create_tenant(operator, "acme", domains=["acme.example"])
    updated = await service.tenants.update_tenant(
        operator, "acme", name="Acme Inc", list_users=False, forwarding=True,
        add_domains=["acme.test", "acme.example"], remove_domains=["acme.example"],
    )
    assert (updated.name, updated.list_users, updated.forwarding, updated.domains) == (
        "Acme Inc", False, True, ("acme.test",))
    [event] = await latest_audit(service, operator)
    assert event.action == "tenant.update"
    assert event.before == {"name": "acme", "domains": ["acme.example"], "list_users": True,
                            "forwarding": False, "finger_log": False}
    assert event.after == {"name": "Acme Inc", "domains": ["acme.test"], "list_users": False,
                           "forwarding": True, "finger_log": False}
    same = await service.tenants.update_tenant(operator, "acme", name="Acme Inc")
    assert same == updated
    assert (await latest_audit(service, operator))[0].id == event.id  # no-op: no event
    with pytest.raises(InvalidInput, match="invalid domain"):
        await service.tenants.update_tenant(operator, "acme", add_domains=["not a domain"])


async def test_remove_tenant_removes_everything_in_it(world: World):
    svc, op = world.service, world.operator
    globex = await svc.public.resolve_tenant("globex")
    await svc.tenants.update_tenant(op, "globex", add_domains=["globex.example"])
    await svc.credentials.add_admin(op, "globex-ops", "correct horse battery", tenant_name="globex")
    await svc.tenants.remove_tenant(op, "globex")
    with pytest.raises(NotFound):
        await svc.public.resolve_tenant("globex")
    assert await svc.public.tenant_for_host("globex.example") is None
    with pytest.raises(Exception, match="invalid token"):
        await svc.credentials.authenticate_token(world.secrets["carol"], Channel.API)
    assert await svc.credentials.list_admins(op) == []
    [event] = await svc.audit.audit_log(op, AuditQuery(action="tenant.remove"), all_tenants=True)
    assert event.before["users"] == 1 and event.tenant == "globex"
    # the audit trail of a removed tenant outlives it
    events = await svc.audit.audit_log(op, AuditQuery(tenant="acme"))
    assert events  # acme untouched
    gone = await svc.audit.audit_log(op, AuditQuery(username="carol"), all_tenants=True)
    assert {e.tenant for e in gone} == {"globex"}
    # a new tenant can take the slug again, empty
    again = await svc.tenants.create_tenant(op, "globex")
    assert again.id != globex.id
    assert (await svc.users.directory(again)).users == []
    issued = await svc.credentials.create_token(op, TokenScope.TENANT, tenant_name="globex")
    assert issued.token.tenant_slug == "globex"
