"""The self-service page in headless Chromium, on SQLite and PostgreSQL: a user on a phone.

Sign in at /login, set a status, save the plan and a profile field, see the
status on the public page, sign out. No JavaScript is involved (the page has
none); the phone viewport must not scroll sideways.
"""

from __future__ import annotations

from playwright.async_api import Browser, expect

from fingerplat.adapters.web.server import WebServer
from fingerplat.domain.model import Context
from fingerplat.service import FingerplatService
from tests.browser.conftest import csp_refusals, new_page, screenshot

STATUS = "At the <b>tea party</b>, back at four"
PASSWORD = "alice-long-password"


async def _fits_the_screen(page) -> bool:  # type: ignore[no-untyped-def]
    return bool(await page.evaluate(
        "document.documentElement.scrollWidth <= window.innerWidth"))


async def test_a_user_changes_their_own_page_from_a_phone(
    browser: Browser, web: WebServer, backend: str, service: FingerplatService,
    operator: Context,
) -> None:
    await service.users.add_user(operator, None, "alice", full_name="Alice Liddell",
                           office="Room 101", project="Looking-glass")
    await service.self_service.set_user_password(operator, None, "alice", PASSWORD)
    await service.self_service.set_self_edit_fields(operator, None, "office,phone,project")
    context, page = await new_page(browser, width=390, height=844)  # a phone
    try:
        base = web.url
        await page.goto(base + "/me")
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        assert page.url == base + "/login"
        assert await _fits_the_screen(page)
        await screenshot(page, "self-01-login", backend)

        await page.get_by_label("User name").fill("alice")
        await page.get_by_label("Password").fill("not-her-password")
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.locator("#login-error")).to_have_text("Wrong user name or password.")
        await page.get_by_label("Password").fill(PASSWORD)
        await page.get_by_role("button", name="Sign in").click()
        await expect(page.get_by_role("heading", name="Alice Liddell")).to_be_visible()
        assert page.url == base + "/me"

        await page.get_by_label("New status").fill(STATUS)
        await page.get_by_role("button", name="Set status").click()
        await expect(page.get_by_text("Status set.")).to_be_visible()
        await expect(page.locator("#current-status")).to_have_text(STATUS)
        assert await page.locator("#current-status b").count() == 0  # text, never markup
        await page.get_by_label("Plan").fill("Tea at four.\nCroquet after.")
        await page.get_by_role("button", name="Save plan").click()
        await expect(page.get_by_text("Plan saved.")).to_be_visible()
        await page.get_by_label("Phone").fill("+44 20 7946 0000")
        await page.get_by_role("button", name="Save profile").click()
        await expect(page.get_by_text("Profile saved.")).to_be_visible()
        # The full name is the administrator's: shown, not editable.
        assert await page.get_by_label("Full name").get_attribute("readonly") is not None
        assert await _fits_the_screen(page)
        shot = await screenshot(page, "self-02-me", backend)
        assert shot.stat().st_size > 10_000

        user = await service.public.public_user(await service.public.resolve_tenant(None), "alice")
        assert user is not None
        assert (user.status, user.plan, user.phone, user.full_name) == (
            STATUS, "Tea at four.\nCroquet after.", "+44 20 7946 0000", "Alice Liddell")
        await page.get_by_role("link", name="public page").click()
        await expect(page.get_by_text(STATUS)).to_be_visible()

        await page.goto(base + "/me")
        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
        await page.goto(base + "/me")
        assert page.url == base + "/login"
        # The site's one strict CSP (headers.py) let the stylesheet and icon load.
        assert await page.evaluate("document.styleSheets[0].cssRules.length") > 0
        assert not csp_refusals(page)
    finally:
        await context.close()
