"""Admin UI (issue 16): the finger log switches, the lookups shown, pseudo-user names refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from fingerplat.domain.model import Context
from tests.integration.web.admin_client import (
    ROOT_NAME,
    ROOT_PASSWORD,
    AdminClient,
    admin_client,
)
from tests.integration.web.conftest import RunningWeb


@pytest.fixture
async def admin(web_server: RunningWeb, operator: Context) -> AsyncIterator[AdminClient]:
    async with admin_client(web_server, operator) as client:
        await client.login(ROOT_NAME, ROOT_PASSWORD)
        yield client


async def test_finger_log_switches_and_the_lookups(admin: AdminClient, web_server: RunningWeb,
                                                   operator: Context) -> None:
    svc = web_server.service
    alice = await svc.users.add_user(operator, None, "alice")
    page = await admin.get("/admin/tenants/default")
    assert 'name="finger_log"' in page.text
    page = await admin.post("/admin/tenants/default/settings", {
        "name": "Default", "list_users": "1", "has_finger_log": "1", "finger_log": "1"})
    assert page.status == 303
    assert (await svc.public.resolve_tenant(None)).finger_log is True

    page = await admin.get("/admin/tenants/default/users/alice")
    assert "Who fingered" not in page.text
    page = await admin.post("/admin/tenants/default/users/alice", {
        "full_name": "Alice", "office": "", "phone": "", "project": "",
        "has_finger_log": "1", "finger_log": "1"})
    assert page.status == 303
    assert (await svc.users.get_user(operator, None, "alice")).finger_log is True

    tenant = await svc.public.resolve_tenant(None)
    await svc.finger_log.write_finger_log([(tenant.id, alice.id, datetime.now(UTC), "web",
                                 "198.51.100.0/24", 3)])
    page = await admin.get("/admin/tenants/default/users/alice")
    assert "Who fingered alice" in page.text and "198.51.100.0/24" in page.text

    # A form without the switch (an older page) leaves it alone; unticked turns it off.
    await admin.post("/admin/tenants/default/users/alice", {
        "full_name": "Alice", "office": "", "phone": "", "project": ""})
    assert (await svc.users.get_user(operator, None, "alice")).finger_log is True
    await admin.post("/admin/tenants/default/users/alice", {
        "full_name": "Alice", "office": "", "phone": "", "project": "",
        "has_finger_log": "1"})
    assert (await svc.users.get_user(operator, None, "alice")).finger_log is False


async def test_a_pseudo_user_name_is_refused_for_a_new_user(
        admin: AdminClient, web_server: RunningWeb, operator: Context) -> None:
    await web_server.service.pseudo_users.add_pseudo_user(operator, None, "help", "help")
    await admin.get("/admin/tenants/default/new-user")
    page = await admin.post("/admin/tenants/default/users", {"username": "help"})
    assert page.status == 409
    assert "pseudo-user" in page.text
