"""The public pages in a real headless Chromium: hostile text stays inert, phones fit.

Debian's ``/usr/bin/chromium`` through Playwright (``apt-get install chromium``;
never skipped). Screenshots land in ``test-artifacts/screenshots/public-*.png``
for people to look at.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, async_playwright

from fingerplat.domain.model import Context
from tests.integration.web.conftest import RunningWeb, Seeded

CHROMIUM = os.environ.get("FINGERPLAT_TEST_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[3] / "test-artifacts" / "screenshots"
HOSTILE_STATUS = '<img src=x onerror="window.pwned=1"><script>window.pwned=2</script>'
HOSTILE_PLAN = '</pre><script>window.pwned=3</script><a href="javascript:window.pwned=4">x</a>'


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (never skipped)")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
        )
        try:
            yield chromium
        finally:
            await chromium.close()


async def test_public_pages_in_a_real_browser(
    web_server: RunningWeb, seeded: Seeded, operator: Context, browser: Browser, backend: str
) -> None:
    await web_server.service.users.set_status(operator, None, "bob", HOSTILE_STATUS)
    await web_server.service.users.set_plan(operator, None, "bob", HOSTILE_PLAN)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    dialogs: list[str] = []
    for label, viewport in (("desktop", {"width": 1200, "height": 860}),
                            ("phone", {"width": 390, "height": 844})):
        context = await browser.new_context(viewport=viewport)  # type: ignore[arg-type]
        context.set_default_timeout(15_000)
        page = await context.new_page()
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        try:
            for name, path in (("directory", "/"), ("user", "/~bob"), ("missing", "/~nobody")):
                response = await page.goto(f"{web_server.url}{path}")
                assert response is not None
                assert response.status == (404 if name == "missing" else 200)
                assert await page.evaluate("window.pwned") is None  # nothing ran
                assert await page.locator("script").count() == 0
                fits = await page.evaluate(
                    "document.documentElement.scrollWidth <= window.innerWidth")
                assert fits, f"{path} scrolls sideways on a {label} screen"
                shot = SCREENSHOTS / f"public-{name}-{label}-{backend}.png"
                await page.screenshot(path=str(shot), full_page=True)
            await page.goto(f"{web_server.url}/~bob")
            assert HOSTILE_STATUS in await page.locator(".status-text").inner_text()
            assert HOSTILE_PLAN in await page.locator("pre.plan").inner_text()
            # The lookup box in the header leads to a user's page.
            await page.goto(f"{web_server.url}/")
            await page.get_by_label("Finger a user").fill("alice")
            await page.get_by_role("button", name="Finger").first.click()
            await page.wait_for_url(f"{web_server.url}/~alice")
            assert "reading" in await page.locator(".status-text").inner_text()
        finally:
            await context.close()
    assert dialogs == []
