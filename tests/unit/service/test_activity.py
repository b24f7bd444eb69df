"""Status changes per day for a tenant's administrators (the admin UI's chart)."""

from __future__ import annotations

import pytest

from fingerplat.domain.errors import PermissionDenied
from fingerplat.domain.model import AuditQuery, Channel, Context, Principal, TokenScope
from fingerplat.service import FingerplatService


async def test_only_the_tenants_admins_may_see_it(
    service: FingerplatService, operator: Context
):
    await service.tenants.create_tenant(operator, "acme")
    await service.tenants.create_tenant(operator, "globex")
    issued = await service.credentials.create_token(
        operator, TokenScope.TENANT, tenant_name="globex")
    globex_admin = Context(
        (await service.credentials.authenticate_token(issued.secret, Channel.API)), Channel.API)
    with pytest.raises(PermissionDenied):
        await service.activity.status_activity(globex_admin, "acme")
    assert await service.activity.status_activity(globex_admin, "globex", days=1) == [
        (service.clock().date(), 0)]
    anonymous = Context(Principal.anonymous(), Channel.WEB)
    with pytest.raises(PermissionDenied):
        await service.activity.status_activity(anonymous, "acme")
    denied = await service.audit.audit_log(operator, AuditQuery(action="activity.read"),
                                     all_tenants=True)
    assert [e.outcome for e in denied] == ["denied", "denied"]
