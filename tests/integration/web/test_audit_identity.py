"""Issue 12 item 6: a tenant created with a removed tenant's slug inherits nothing.

The attack: create tenant ``beta``, add a hidden user and a status, remove the
tenant, add ``beta`` again, create a tenant-admin token for it, and read
``GET /api/v1/tenants/beta/audit``: before the fix it returned the old
tenant's events, addresses included. Audit events now belong to the tenant's
immutable id; the platform operator still sees the old history, labelled as
removed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from fingerplat.domain.model import AuditQuery, Channel, Context, Principal, TokenScope
from tests.integration.web.admin_client import ROOT_NAME, ROOT_PASSWORD, AdminClient, admin_client
from tests.integration.web.conftest import RunningWeb, bearer


async def _reuse_slug(web: RunningWeb, operator: Context) -> str:
    """Run the attack's set-up; returns the new beta's tenant-admin token."""
    svc = web.service
    old_admin = Context(Principal.operator("old-operator"), Channel.API,
                        remote_addr="198.51.100.7")
    await svc.tenants.create_tenant(old_admin, "beta")
    await svc.users.add_user(old_admin, "beta", "ghost", full_name="Secret Ghost", hidden=True)
    await svc.users.set_status(old_admin, "beta", "ghost", "in the vault")
    await svc.credentials.create_token(old_admin, TokenScope.TENANT, tenant_name="beta")
    await svc.tenants.remove_tenant(operator, "beta")
    await svc.tenants.create_tenant(operator, "beta")
    issued = await svc.credentials.create_token(operator, TokenScope.TENANT, tenant_name="beta")
    return issued.secret


async def test_a_reused_slug_sees_none_of_the_old_tenants_audit(
    web_server: RunningWeb, operator: Context, http: aiohttp.ClientSession
) -> None:
    token = await _reuse_slug(web_server, operator)
    url = f"{web_server.url}/api/v1/tenants/beta/audit?limit=1000"
    async with http.get(url, headers=bearer(token)) as resp:
        assert resp.status == 200
        body = await resp.json()
        raw = await resp.text()
    actions = [(e["action"], e["target"]) for e in body["events"]]
    # Only the new tenant's own history: its creation and its token.
    assert [a for a, _ in actions] == ["token.create", "tenant.create"], actions
    for leaked in ("ghost", "in the vault", "198.51.100.7", "old-operator", "tenant.remove"):
        assert leaked not in raw
    new_id = body["events"][0]["tenant_id"]
    assert all(e["tenant_id"] == new_id and e["tenant_removed"] is False
               for e in body["events"])
    # Filters cannot reach the old events either.
    async with http.get(f"{url}&user=ghost", headers=bearer(token)) as resp:
        assert (await resp.json())["events"] == []
    # The new tenant has no users and no tokens of the old one.
    async with http.get(f"{web_server.url}/api/v1/tenants/beta/users/ghost",
                        headers=bearer(token)) as resp:
        assert resp.status == 404
    tokens = await web_server.service.credentials.list_tokens(operator, "beta")
    assert len(tokens) == 1


async def test_the_operator_still_sees_the_old_history_labelled_removed(
    web_server: RunningWeb, operator: Context
) -> None:
    await _reuse_slug(web_server, operator)
    everything = await web_server.service.audit.audit_log(
        operator, AuditQuery(limit=1000), all_tenants=True)
    beta = [e for e in everything if e.tenant == "beta"]
    old = [e for e in beta if e.tenant_removed]
    new = [e for e in beta if not e.tenant_removed]
    assert {e.action for e in old} >= {"tenant.create", "user.create", "status.set",
                                       "token.create", "tenant.remove"}
    assert [e.action for e in new] == ["token.create", "tenant.create"]
    assert len({e.tenant_id for e in old}) == 1 and old[0].tenant_id != new[0].tenant_id
    assert old[0].tenant_label == "beta (removed)" and new[0].tenant_label == "beta"


@pytest.fixture
async def admin(web_server: RunningWeb, operator: Context) -> AsyncIterator[AdminClient]:
    async with admin_client(web_server, operator) as client:
        await client.login(ROOT_NAME, ROOT_PASSWORD)
        yield client


async def test_admin_audit_pages_separate_the_two_tenants(
    web_server: RunningWeb, operator: Context, admin: AdminClient
) -> None:
    await _reuse_slug(web_server, operator)
    page = await admin.get("/admin/tenants/beta/audit")
    assert page.status == 200
    assert "tenant.create" in page.text
    assert "ghost@beta" not in page.text and "198.51.100.7" not in page.text
    page = await admin.get("/admin/audit")
    assert page.status == 200
    assert "ghost@beta" in page.text and "(removed)" in page.text
