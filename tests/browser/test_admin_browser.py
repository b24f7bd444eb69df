"""The admin UI end to end in headless Chromium, on SQLite and PostgreSQL.

A person's path: log in, create a user, set a status, see it on the public
page and in the audit log, export the audit as CSV. Plus the two refusals a
browser can provoke: a form without its CSRF token, and a tenant admin
typing another tenant's URL.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from fingerplat.adapters.web.server import WebServer
from fingerplat.domain.model import Context
from fingerplat.service import FingerplatService
from tests.browser.conftest import ROOT_NAME, ROOT_PASSWORD, login, new_page, screenshot

STATUS = "Reviewing <b>pull requests</b> & drinking tea"


async def test_admin_creates_a_user_sets_a_status_and_audits_it(
    page: Page, web: WebServer, backend: str, service: FingerplatService, operator: Context,
    tmp_path: Path,
) -> None:
    base = web.url
    await page.goto(base + "/admin/")
    await expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    await screenshot(page, "01-login", backend)

    await login(page, base, ROOT_NAME, ROOT_PASSWORD)
    await expect(page.get_by_role("heading", name="Tenants")).to_be_visible()
    await service.tenants.create_tenant(operator, "acme", name="Acme Corporation",
                                domains=["acme.example"])
    await page.reload()
    await screenshot(page, "02-tenants", backend)

    await page.get_by_role("link", name="Default", exact=False).first.click()
    await expect(page.get_by_role("link", name="New user")).to_be_visible()
    await page.get_by_role("link", name="New user").click()
    await page.get_by_label("User name").fill("alice")
    await page.get_by_label("Full name").fill("Alice Liddell")
    await page.get_by_label("Office").fill("Room 101")
    await page.get_by_label("Project").fill("Looking-glass")
    await screenshot(page, "03-new-user", backend)
    await page.get_by_role("button", name="Create user").click()
    await expect(page.get_by_text("User alice created.")).to_be_visible()

    await page.get_by_label("New status").fill(STATUS)
    await page.get_by_role("button", name="Set status").click()
    await expect(page.get_by_text("Status set.")).to_be_visible()
    await expect(page.locator("#current-status")).to_have_text(STATUS)
    await page.get_by_label("Plan").fill("Finish the tea party.\nThen the croquet match.")
    await page.get_by_role("button", name="Save plan").click()
    await expect(page.get_by_text("Plan saved.")).to_be_visible()
    assert await page.locator("#current-status b").count() == 0  # shown as text, not markup
    await screenshot(page, "04-user", backend)

    await page.get_by_role("link", name="Users").first.click()
    await expect(page.get_by_role("cell", name=STATUS)).to_be_visible()
    await screenshot(page, "05-users", backend)

    # The public page shows the status the admin just set, as text.
    public = page.get_by_role("link", name="Public page")
    await page.goto(base + "/admin/tenants/default/users/alice")
    href = await public.get_attribute("href")
    assert href == "/t/default/~alice"
    response = await page.goto(base + href)
    assert response is not None and response.status == 200
    await expect(page.get_by_text(STATUS)).to_be_visible()
    await screenshot(page, "06-public-user", backend)

    # The audit page lists the change with channel web.
    await page.goto(base + "/admin/audit")
    row = page.locator("tr", has=page.locator("code", has_text="status.set"))
    await expect(row).to_have_count(1)
    await expect(row).to_contain_text("admin:root")
    await expect(row).to_contain_text("web")
    await expect(row).to_contain_text("alice@default")
    await screenshot(page, "07-audit", backend)
    await page.get_by_label("User").fill("alice")
    await page.get_by_label("Action").fill("status.set")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("tbody tr")).to_have_count(1)

    async with page.expect_download() as info:
        await page.get_by_role("link", name="Export CSV").click()
    download = await info.value
    target = tmp_path / "audit.csv"
    await download.save_as(target)
    rows = list(csv.DictReader(io.StringIO(target.read_text(encoding="utf-8"))))
    assert [(r["action"], r["channel"], r["actor"], r["target"]) for r in rows] == [
        ("status.set", "web", "admin:root", "alice@default")]
    assert STATUS in rows[0]["after"]

    # Tokens: the created token is shown once.
    await page.goto(base + "/admin/tenants/default/tokens")
    await page.locator("input[name=username]").fill("alice")
    await page.get_by_label("Expires after", exact=False).fill("30")
    await page.get_by_role("button", name="Create token").click()
    secret = await page.locator("#token-secret").inner_text()
    assert secret.startswith("fp")
    await screenshot(page, "08-token-created", backend)
    await page.reload()
    await expect(page.locator("#token-secret")).to_have_count(0)

    await page.goto(base + "/admin/tenants/acme")
    await screenshot(page, "09-tenant-settings", backend)
    await page.goto(base + "/admin/admins")
    await screenshot(page, "10-admins", backend)


async def test_form_without_csrf_token_is_refused(
    page: Page, web: WebServer, backend: str, service: FingerplatService, operator: Context,
) -> None:
    await service.users.add_user(operator, None, "bob")
    await login(page, web.url, ROOT_NAME, ROOT_PASSWORD)
    await page.goto(web.url + "/admin/tenants/default/users/bob")
    await page.get_by_label("New status").fill("forged")
    # A forged form: the same fields, without the hidden token.
    await page.evaluate(
        "document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())"
    )
    async with page.expect_response(lambda r: r.request.method == "POST") as info:
        await page.get_by_role("button", name="Set status").click()
    response = await info.value
    assert response.status == 403
    await expect(page.get_by_role("heading", name="Form refused")).to_be_visible()
    await screenshot(page, "11-csrf-refused", backend)
    assert (await service.users.get_user(operator, None, "bob")).status is None


async def test_tenant_admin_cannot_reach_another_tenant_by_url(
    browser: Browser, web: WebServer, backend: str, service: FingerplatService,
    operator: Context,
) -> None:
    await service.tenants.create_tenant(operator, "acme", name="Acme Corporation")
    await service.tenants.create_tenant(operator, "globex", name="Globex")
    await service.users.add_user(operator, "globex", "hank", full_name="Hank Scorpio")
    await service.users.add_user(operator, "acme", "wile", full_name="Wile E. Coyote")
    await service.credentials.add_admin(operator, "acme-boss", "acme-password", tenant_name="acme")
    context, page = await new_page(browser, width=390, height=844)  # a phone
    try:
        await login(page, web.url, "acme-boss", "acme-password")
        await expect(page.get_by_role("link", name="wile", exact=True)).to_be_visible()
        await screenshot(page, "12-tenant-admin-phone", backend)
        for path in ("/admin/tenants/globex/users", "/admin/tenants/globex/users/hank",
                     "/admin/tenants/globex/audit", "/admin/tenants"):
            response = await page.goto(web.url + path)
            assert response is not None
            if path == "/admin/tenants":
                # The list shows only the admin's own tenant.
                assert response.status == 200
                await expect(page.get_by_text("Globex")).to_have_count(0)
                continue
            assert response.status == 403, path
            await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
            await expect(page.get_by_text("Hank Scorpio")).to_have_count(0)
            if path.endswith("/hank"):
                await screenshot(page, "13-forbidden", backend)
        await screenshot(page, "14-tenant-admin-tenants-phone", backend)
    finally:
        await context.close()


async def test_audit_filters_sit_on_one_row_and_every_page_fits_a_phone(
    browser: Browser, web: WebServer, backend: str, service: FingerplatService,
    operator: Context,
) -> None:
    await service.tenants.create_tenant(operator, "acme", name="Acme Corporation")
    await service.users.add_user(operator, "acme", "carol")
    await service.users.set_status(operator, "acme", "carol", "at the anvil factory")

    context, desk = await new_page(browser, width=1280)
    try:
        await login(desk, web.url, ROOT_NAME, ROOT_PASSWORD)
        await desk.goto(web.url + "/admin/audit")
        boxes = [await desk.locator(f".filters {what}").bounding_box()
                 for what in ("select[name=tenant]", "input[name=user]", "input[name=action]",
                              "input[name=since]", "input[name=until]",
                              "button[type=submit]", "a.btn")]
        assert all(box is not None for box in boxes)
        tops = {round(box["y"]) for box in boxes if box}
        bottoms = {round(box["y"] + box["height"]) for box in boxes if box}
        assert len(tops) == 1 and len(bottoms) == 1, (tops, bottoms)  # one aligned row
        assert await desk.locator("input[name=since]").get_attribute("placeholder") == (
            "YYYY-MM-DD")
        await screenshot(desk, "10-audit-filters", backend)
    finally:
        await context.close()

    context, phone = await new_page(browser, width=390, height=844)
    try:
        await login(phone, web.url, ROOT_NAME, ROOT_PASSWORD)
        for path in ("/admin/tenants", "/admin/tenants/acme", "/admin/tenants/acme/users",
                     "/admin/tenants/acme/users/carol", "/admin/tenants/acme/tokens",
                     "/admin/audit", "/admin/admins"):
            await phone.goto(web.url + path)
            width = await phone.evaluate("document.documentElement.scrollWidth")
            assert width <= 390, f"{path} scrolls sideways on a phone ({width}px)"
        await phone.goto(web.url + "/admin/tenants/acme")
        await expect(phone.locator("svg.chart-svg")).to_be_visible()
        await screenshot(phone, "11-tenant-phone", backend)
    finally:
        await context.close()


async def test_tenant_time_zone_public_fields_and_networks_in_the_browser(
    page: Page, web: WebServer, backend: str, service: FingerplatService, operator: Context,
) -> None:
    await login(page, web.url, ROOT_NAME, ROOT_PASSWORD)
    await page.goto(web.url + "/admin/tenants/default")
    form = page.locator("#visibility form")
    await form.get_by_label("Time zone").fill("Europe/Paris")
    await form.get_by_label("phone").uncheck()
    await form.get_by_label("Rejected networks", exact=False).fill("2001:db8::/32\n192.0.2.0/24")
    await form.get_by_role("button", name="Save").click()
    await expect(page.get_by_text("Time zone, public fields and networks saved.")).to_be_visible()
    tenant = await service.tenants.get_tenant(operator, "default")
    assert tenant.timezone == "Europe/Paris" and not tenant.shows("phone")
    assert tenant.rejected_networks == ("192.0.2.0/24", "2001:db8::/32")
    await screenshot(page, "11-tenant-visibility", backend)

    await form.get_by_label("Trusted networks", exact=False).fill("not-a-network")
    await form.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("alert")).to_contain_text("invalid network 'not-a-network'")
    await expect(form.get_by_label("Trusted networks", exact=False)).to_have_value("not-a-network")
    assert (await service.tenants.get_tenant(operator, "default")).trusted_networks == ()
