"""Reading the audit trail with filters, and change events published after commits."""

from __future__ import annotations

import pytest

from fingerplat.domain.errors import InvalidInput, PermissionDenied
from fingerplat.domain.model import AuditQuery
from tests.integration.service.conftest import make_world


async def test_audit_query_is_validated(service, operator):
    for limit in [0, 1001]:
        with pytest.raises(InvalidInput, match="limit must be between 1 and 1000"):
            await service.audit.audit_log(operator, AuditQuery(limit=limit))
    with pytest.raises(InvalidInput, match="invalid username"):
        await service.audit.audit_log(operator, AuditQuery(username="bad name"))


async def test_tenant_admin_reads_only_own_trail(service, operator):
    world = await make_world(service, operator)
    ctx = world.ctx("acme_admin")
    events = await service.audit.audit_log(ctx, AuditQuery(tenant="acme", limit=1000))
    assert events and {e.tenant for e in events} == {"acme"}
    with pytest.raises(PermissionDenied):
        await service.audit.audit_log(ctx, AuditQuery(tenant="globex"))
    with pytest.raises(PermissionDenied):
        await service.audit.audit_log(world.ctx("alice"), AuditQuery(tenant="acme"))
