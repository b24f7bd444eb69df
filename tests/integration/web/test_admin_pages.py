"""Admin UI pages over the real web server, on both databases.

What an admin does through the forms must land in the service (and the
audit, with channel ``web``), and what the service refuses must show as an
error page: especially a tenant admin reaching for another tenant by URL.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import AsyncIterator

import pytest

from fingerplat.domain.model import AuditQuery, Channel, Context, TokenScope
from tests.integration.web.admin_client import (
    ROOT_NAME,
    ROOT_PASSWORD,
    AdminClient,
    admin_client,
    text_of,
    web_audit,
)
from tests.integration.web.conftest import RunningWeb


@pytest.fixture
async def admin(web_server: RunningWeb, operator: Context) -> AsyncIterator[AdminClient]:
    async with admin_client(web_server, operator) as client:
        await client.login(ROOT_NAME, ROOT_PASSWORD)
        yield client


async def test_user_lifecycle_through_the_forms(
    admin: AdminClient, web_server: RunningWeb, operator: Context
) -> None:
    svc = web_server.service
    await admin.get("/admin/tenants/default/new-user")
    page = await admin.post("/admin/tenants/default/users", {
        "username": "alice", "full_name": "Alice Liddell", "office": "B-12",
        "phone": "+1 555", "project": "rabbit hole",
    })
    assert page.status == 303 and page.location == "/admin/tenants/default/users/alice"
    page = await admin.get(page.location)
    assert "User alice created." in page.text and "Alice Liddell" in page.text

    page = await admin.post("/admin/tenants/default/users/alice/status",
                            {"status": "down the <b>rabbit</b> hole"})
    assert page.status == 303
    page = await admin.get("/admin/tenants/default/users/alice")
    assert "down the &lt;b&gt;rabbit&lt;/b&gt; hole" in page.text  # escaped, inert
    assert "<b>rabbit</b>" not in page.text
    assert "Status set." in page.text

    await admin.post("/admin/tenants/default/users/alice/plan", {"plan": "line 1\r\nline 2"})
    await admin.post("/admin/tenants/default/users/alice", {
        "full_name": "Alice L.", "office": "", "phone": "", "project": "", "hidden": "1",
    })
    user = await svc.users.get_user(operator, None, "alice")
    assert (user.status, user.plan, user.full_name, user.hidden) == (
        "down the <b>rabbit</b> hole", "line 1\nline 2", "Alice L.", True)
    assert user.office == ""

    await admin.post("/admin/tenants/default/users/alice/status/clear")
    page = await admin.get("/admin/tenants/default/users/alice")
    assert "No status set." in page.text
    history = text_of(page.text)
    assert "cleared" in history and "admin:root" in history

    # Every change is in the audit, made by admin:root over the web channel.
    for action in ("user.create", "status.set", "plan.set", "user.update", "status.clear"):
        events = await web_audit(svc, operator, action)
        assert [(e.actor, e.target, e.remote_addr) for e in events] == [
            ("admin:root", "alice@default", "127.0.0.1")], action

    page = await admin.get("/admin/tenants/default/users/alice/remove")
    assert "Remove user alice?" in page.text
    page = await admin.post("/admin/tenants/default/users/alice/remove")
    assert page.status == 303
    assert "User alice removed." in (await admin.get(page.location)).text
    assert len(await web_audit(svc, operator, "user.remove")) == 1


async def test_refused_input_shows_the_form_again(admin: AdminClient) -> None:
    await admin.get("/admin/tenants/default/new-user")
    page = await admin.post("/admin/tenants/default/users",
                            {"username": "Bad Name!", "full_name": "Kept Value"})
    assert page.status == 422
    assert "invalid username" in page.text and 'value="Kept Value"' in page.text
    await admin.post("/admin/tenants/default/users", {"username": "bob"})
    page = await admin.post("/admin/tenants/default/users", {"username": "bob"})
    assert page.status == 409 and "already exists" in page.text
    page = await admin.post("/admin/tenants/default/users/bob/status", {"status": "x" * 300})
    assert page.status == 422 and "at most 280" in page.text


async def test_user_list_search_and_pages(
    admin: AdminClient, web_server: RunningWeb, operator: Context
) -> None:
    for i in range(30):
        await web_server.service.users.add_user(operator, None, f"user{i:02d}",
                                          full_name=f"Person {i}", hidden=i == 3)
    page = await admin.get("/admin/tenants/default/users")
    names = re.findall(r'/users/(user\d\d)"><strong>', page.text)
    assert names == [f"user{i:02d}" for i in range(25)]  # hidden user03 included
    assert "30 users in this tenant" in text_of(page.text)
    next_link = re.search(r'href="([^"]+)">Next page', page.text)
    assert next_link
    page = await admin.get(next_link.group(1).replace("&amp;", "&"))
    names = re.findall(r'/users/(user\d\d)"><strong>', page.text)
    assert names == [f"user{i}" for i in range(25, 30)]
    assert "Next page" not in page.text and "First page" in page.text
    page = await admin.get("/admin/tenants/default/users?q=person+1")
    found = re.findall(r'/users/(user\d\d)"><strong>', page.text)
    assert found == ["user01"] + [f"user{i}" for i in range(10, 20)]


async def test_platform_admin_manages_tenants(
    admin: AdminClient, web_server: RunningWeb, operator: Context
) -> None:
    svc = web_server.service
    await admin.get("/admin/tenants")
    page = await admin.post("/admin/tenants", {"slug": "acme", "name": "Acme Corp",
                                               "domains": "acme.example, www.acme.example"})
    assert page.status == 303 and page.location == "/admin/tenants/acme"
    page = await admin.get("/admin/tenants/acme")
    assert "Tenant acme created." in page.text and "www.acme.example" in page.text
    await admin.post("/admin/tenants/acme/domains", {"domain": "acme.test"})
    await admin.post("/admin/tenants/acme/domains/remove", {"domain": "www.acme.example"})
    await admin.post("/admin/tenants/acme/settings", {
        "name": "Acme Inc", "list_users": "1", "has_forwarding": "1", "forwarding": "1"})
    tenant = await svc.tenants.get_tenant(operator, "acme")
    assert (tenant.name, tenant.domains, tenant.list_users, tenant.forwarding) == (
        "Acme Inc", ("acme.example", "acme.test"), True, True)
    page = await admin.post("/admin/tenants", {"slug": "acme"})
    assert page.status == 409 and "already exists" in page.text

    page = await admin.get("/admin/tenants/acme/remove")
    page = await admin.post("/admin/tenants/acme/remove", {"confirm": "wrong"})
    assert page.status == 422 and "to confirm" in page.text
    page = await admin.post("/admin/tenants/acme/remove", {"confirm": "acme"})
    assert page.status == 303
    assert "Tenant acme removed." in (await admin.get("/admin/tenants")).text
    assert (await admin.get("/admin/tenants/acme")).status == 404
    for action in ("tenant.create", "tenant.update", "tenant.remove"):
        assert await web_audit(svc, operator, action), action


async def test_platform_admin_manages_admins(
    admin: AdminClient, web_server: RunningWeb, operator: Context
) -> None:
    await web_server.service.tenants.create_tenant(operator, "acme")
    await admin.get("/admin/admins")
    page = await admin.post("/admin/admins", {"name": "ann", "password": "s3cret-pass",
                                              "password2": "other", "tenant": "acme"})
    assert page.status == 422 and "passwords differ" in page.text
    assert "s3cret-pass" not in page.text
    page = await admin.post("/admin/admins", {"name": "ann", "password": "s3cret-pass",
                                              "password2": "s3cret-pass", "tenant": "acme"})
    assert page.status == 303
    page = await admin.get("/admin/admins")
    assert "Admin ann created for tenant acme." in page.text
    # The new tenant admin can log in and lands on their tenant.
    other = AdminClient(web_server.url)
    try:
        page = await other.login("ann", "s3cret-pass")
        assert page.status == 200 and "ann" in page.text
        assert 'href="/admin/tenants/acme/users" aria-current="page"' in page.text
        # Removing the admin ends their session at once.
        await admin.get("/admin/admins/ann/remove")
        page = await admin.post("/admin/admins/ann/remove")
        assert page.status == 303
        assert (await other.get("/admin/tenants/acme/users", follow=False)).status == 303
    finally:
        await other.close()
    assert len(await web_audit(web_server.service, operator, "admin.remove")) == 1


async def test_tokens_are_shown_once_and_can_be_revoked(
    admin: AdminClient, web_server: RunningWeb, operator: Context
) -> None:
    svc = web_server.service
    await svc.users.add_user(operator, None, "alice")
    await admin.get("/admin/tenants/default/tokens")
    page = await admin.post("/admin/tenants/default/tokens",
                            {"scope": "user", "username": "alice", "expires_days": "30"})
    assert page.status == 303
    page = await admin.get("/admin/tenants/default/tokens")
    secret = re.search(r'id="token-secret">([^<]+)<', page.text)
    assert secret and "shown only once" in page.text
    principal = await svc.credentials.authenticate_token(secret.group(1), Channel.API)
    assert principal.name.endswith("(alice@default)")
    listing = await admin.get("/admin/tenants/default/tokens")
    assert secret.group(1) not in listing.text
    token_id = principal.token_id
    assert f"<code>{token_id}</code>" in listing.text
    page = await admin.post(f"/admin/tenants/default/tokens/{token_id}/revoke")
    assert page.status == 303
    listing = await admin.get("/admin/tenants/default/tokens")
    assert f"Token {token_id} revoked." in listing.text and "revoked" in listing.text
    page = await admin.post("/admin/tenants/default/tokens",
                            {"scope": "user", "username": "nobody", "expires_days": ""})
    assert page.status == 404 and "no such user" in page.text
    page = await admin.post("/admin/tenants/default/tokens",
                            {"scope": "tenant", "username": "", "expires_days": "ten"})
    assert page.status == 422 and "whole number" in page.text
    # Platform tokens, on their own page.
    await admin.get("/admin/tokens")
    page = await admin.post("/admin/tokens", {"scope": "platform", "expires_days": ""})
    assert page.status == 303
    page = await admin.get("/admin/tokens")
    assert 'id="token-secret">fp' in page.text
    created = await web_audit(svc, operator, "token.create")
    assert sorted(e.target for e in created) == ["alice@default", "platform"]
    assert len(await web_audit(svc, operator, "token.revoke")) == 1


async def test_audit_page_filters_pages_and_exports_csv(
    admin: AdminClient, web_server: RunningWeb, operator: Context
) -> None:
    svc = web_server.service
    await svc.users.add_user(operator, None, "alice")
    await svc.users.add_user(operator, None, "bob")
    await admin.get("/admin/tenants/default/users/alice")
    for text in ("=HYPERLINK(\"http://evil.example\")", "+1 on the phone", "-5 degrees",
                 "@here lunch", "plain status"):
        await admin.post("/admin/tenants/default/users/alice/status", {"status": text})
    for i in range(55):
        await svc.users.set_status(operator, None, "bob", f"bob status {i}")

    page = await admin.get("/admin/tenants/default/audit?user=alice&action=status.set")
    rows = page.text.count("<code>status.set</code>")
    assert rows == 5 and "bob status" not in page.text
    assert "=HYPERLINK(&#34;http://evil.example&#34;)" in page.text

    # The action filter offers every action the service audits, imports and exports too.
    offered = set(re.findall(r'<option value="([^"]+)">', page.text))
    assert {"import.run", "import.create", "import.update", "export", "auth.local",
            "auth.failures", "status.expire", "web.csrf"} <= offered

    page = await admin.get("/admin/tenants/default/audit?user=bob")
    assert page.text.count("<code>status.set</code>") == 50
    older = re.search(r'href="([^"]+)">Older', page.text)
    assert older
    page = await admin.get(older.group(1).replace("&amp;", "&"))
    assert page.text.count("<td><code>") == 6  # 5 older status.set + user.create
    assert "<code>user.create</code>" in page.text

    page = await admin.get("/admin/tenants/default/audit?since=not-a-date")
    assert page.status == 422 and "must be a date" in page.text

    async with admin.session.get(
        admin.base + "/admin/tenants/default/audit.csv?user=alice&action=status.set"
    ) as r:
        assert r.status == 200
        assert r.headers["Content-Type"].startswith("text/csv")
        assert r.headers["Content-Disposition"].startswith('attachment; filename="audit-default')
        body = await r.text()
    table = list(csv.reader(io.StringIO(body)))
    assert table[0][:8] == ["id", "at", "tenant", "actor", "channel", "action", "target",
                            "outcome"]
    statuses = [row[11] for row in table[1:]]
    assert [row[4] for row in table[1:]] == ["web"] * 5
    assert statuses == [
        '{"status": "plain status"}',
        '{"status": "@here lunch"}',
        '{"status": "-5 degrees"}',
        '{"status": "+1 on the phone"}',
        '{"status": "=HYPERLINK(\\"http://evil.example\\")"}',
    ]
    befores = [row[10] for row in table[1:]]
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in table for cell in row)
    assert befores[-1] == '{"status": null}'

    async with admin.session.get(admin.base + "/admin/audit.csv?action=status.set") as r:
        everything = list(csv.reader(io.StringIO(await r.text())))
    assert len(everything) == 1 + 5 + 55  # all pages of the export, header once


async def test_tenant_admin_cannot_reach_another_tenant(
    web_server: RunningWeb, operator: Context
) -> None:
    svc = web_server.service
    await svc.tenants.create_tenant(operator, "acme")
    await svc.tenants.create_tenant(operator, "globex")
    await svc.users.add_user(operator, "globex", "hank", full_name="Hank Scorpio")
    await svc.users.add_user(operator, "acme", "wile")
    issued = await svc.credentials.create_token(operator, TokenScope.USER, tenant_name="globex",
                                    username="hank")
    await svc.credentials.add_admin(operator, "acme-boss", "acme-password", tenant_name="acme")
    client = AdminClient(web_server.url)
    try:
        page = await client.login("acme-boss", "acme-password")
        assert page.status == 200 and "wile" in page.text  # landed on acme's users
        assert (await client.get("/admin/tenants/acme/tokens")).status == 200
        for path in ("/admin/tenants/globex", "/admin/tenants/globex/users",
                     "/admin/tenants/globex/users/hank", "/admin/tenants/globex/tokens",
                     "/admin/tenants/globex/audit", "/admin/tenants/globex/audit.csv",
                     "/admin/tenants/globex/new-user", "/admin/tenants/default/users",
                     "/admin/admins", "/admin/tokens", "/admin/audit", "/admin/audit.csv",
                     "/admin/audit?tenant=globex"):
            page = await client.get(path)
            assert page.status == 403, path
            assert "Hank Scorpio" not in page.text, path
        await client.get("/admin/tenants/acme/users")
        forms = {
            "/admin/tenants/globex/users": {"username": "intruder"},
            "/admin/tenants/globex/users/hank/status": {"status": "pwned"},
            "/admin/tenants/globex/users/hank/remove": {},
            f"/admin/tenants/acme/tokens/{issued.token.id}/revoke": {},
            "/admin/tenants/globex/settings": {"name": "Owned"},
            "/admin/tenants": {"slug": "mine"},
        }
        for path, data in forms.items():
            page = await client.post(path, data)
            assert page.status == 403, path
        # The acme admin may not change acme's domains or forwarding (platform only)...
        page = await client.post("/admin/tenants/acme/domains", {"domain": "acme.example"})
        assert page.status == 403
        page = await client.post("/admin/tenants/acme/settings", {
            "name": "Acme Two", "has_forwarding": "1", "forwarding": "1"})
        assert page.status == 403
        # ... but may rename it and choose whether its user list is published.
        await client.get("/admin/tenants/acme")
        assert "has_forwarding" not in (await client.get("/admin/tenants/acme")).text
        page = await client.post("/admin/tenants/acme/settings", {"name": "Acme Two"})
        assert page.status == 303
    finally:
        await client.close()
    hank = await svc.users.get_user(operator, "globex", "hank")
    assert hank.status is None
    assert (await svc.tenants.get_tenant(operator, "globex")).name == "globex"
    acme = await svc.tenants.get_tenant(operator, "acme")
    assert (acme.name, acme.list_users, acme.forwarding, acme.domains) == (
        "Acme Two", False, False, ())
    tokens = await svc.credentials.list_tokens(operator, "globex")
    assert tokens[0].revoked_at is None
    denied = await svc.audit.audit_log(operator, AuditQuery(tenant="globex", limit=100))
    assert {e.outcome for e in denied if e.actor == "admin:acme-boss"} == {"denied"}
    assert {e.channel for e in denied if e.actor == "admin:acme-boss"} == {"web"}


async def test_oversized_form_is_refused_with_a_page(admin: AdminClient) -> None:
    await admin.get("/admin/tenants/default/new-user")
    page = await admin.post("/admin/tenants/default/users",
                            {"username": "big", "full_name": "x" * 200_000})
    assert page.status == 413
    assert "Form too large" in page.text
    assert (await admin.get("/admin/tenants/default/users/big")).status == 404


async def test_tenant_page_draws_its_status_changes_without_javascript(
    admin: AdminClient, web_server: RunningWeb, operator: Context
) -> None:
    svc = web_server.service
    await svc.users.add_user(operator, None, "alice")
    await svc.users.set_status(operator, None, "alice", "one")
    await svc.users.set_status(operator, None, "alice", "two")
    page = await admin.get("/admin/tenants/default")
    assert page.status == 200
    chart = re.search(r'<svg [^>]*role="img" aria-label="([^"]*)"', page.text)
    assert chart is not None, "no chart on the tenant page"
    assert chart.group(1).startswith("2 status changes from ")
    today = svc.clock().date().isoformat()
    assert f"<title>{today}: 2 changes</title>" in page.text
    assert page.text.count("<rect ") == 30
    assert "<script" not in page.text
    # The default tenant is named once, not three times ("Default", default, `default`).
    head = page.text.split("<h1>", 1)[1].split('<nav class="tabs"', 1)[0]
    assert text_of(head) == "Default default tenant"
    assert "No domains yet" in page.text


async def test_every_page_has_an_icon(web_server: RunningWeb, admin: AdminClient) -> None:
    icon = await admin.get("/favicon.ico")
    assert icon.status == 200 and icon.text.startswith("<svg")
    page = await admin.get("/admin/tenants")
    assert '<link rel="icon" href="/static/favicon.svg"' in page.text


async def test_tenant_time_zone_public_fields_and_networks_form(
    admin: AdminClient, web_server: RunningWeb, operator: Context
) -> None:
    svc = web_server.service
    page = await admin.get("/admin/tenants/default")
    assert 'name="timezone"' in page.text and 'value="UTC"' in page.text
    page = await admin.post("/admin/tenants/default/visibility", {
        "timezone": "Europe/Paris", "has_public_fields": "1", "public_fields": "status",
        "trusted_networks": "10.0.0.0/8\n2001:DB8::/32", "rejected_networks": "192.0.2.7"})
    assert page.status == 303
    tenant = await svc.tenants.get_tenant(operator, "default")
    assert tenant.timezone == "Europe/Paris"
    assert tenant.public_fields == frozenset({"status"})
    assert tenant.trusted_networks == ("10.0.0.0/8", "2001:db8::/32")
    assert tenant.rejected_networks == ("192.0.2.7/32",)
    page = await admin.get("/admin/tenants/default")
    assert "saved" in page.text and "2001:db8::/32" in page.text

    page = await admin.post("/admin/tenants/default/visibility", {
        "timezone": "Atlantis/Capital", "has_public_fields": "1", "public_fields": "plan",
        "trusted_networks": "", "rejected_networks": "192.0.2.7/32"})
    assert page.status == 422 and "unknown time zone" in page.text
    assert "Atlantis/Capital" in page.text  # the form comes back as typed
    page = await admin.post("/admin/tenants/default/visibility", {
        "timezone": "UTC", "has_public_fields": "1", "public_fields": "plan",
        "trusted_networks": "10.0.0.0/40", "rejected_networks": ""})
    assert page.status == 422 and "invalid network" in page.text
    assert (await svc.tenants.get_tenant(
        operator, "default")).timezone == "Europe/Paris"  # unchanged

    page = await admin.post("/admin/tenants/default/visibility", {
        "timezone": "UTC", "trusted_networks": "", "rejected_networks": ""})
    assert page.status == 303
    tenant = await svc.tenants.get_tenant(operator, "default")
    assert (tenant.trusted_networks, tenant.rejected_networks) == ((), ())
    assert tenant.public_fields == frozenset({"status"})  # no has_public_fields: unchanged
    assert await web_audit(svc, operator, "tenant.update")


async def test_status_with_an_expiry_through_the_form(
    admin: AdminClient, web_server: RunningWeb, operator: Context
) -> None:
    svc = web_server.service
    await svc.users.add_user(operator, None, "alice")
    await admin.get("/admin/tenants/default/users/alice")
    page = await admin.post("/admin/tenants/default/users/alice/status",
                            {"status": "at lunch", "expires": "soonish"})
    assert page.status == 422 and "invalid expiry &#39;soonish&#39;" in page.text
    assert "soonish" in page.text and "at lunch" in page.text  # the form as typed
    page = await admin.post("/admin/tenants/default/users/alice/status",
                            {"status": "at lunch", "expires": "45m"})
    assert page.status == 303
    page = await admin.get("/admin/tenants/default/users/alice")
    assert 'id="status-until"' in page.text
    user = await svc.users.get_user(operator, None, "alice")
    assert user.status == "at lunch" and user.status_expires_at is not None
