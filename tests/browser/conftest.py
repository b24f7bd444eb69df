"""Fixtures for the admin UI in a real headless Chromium (Debian's, through Playwright).

The browser is Debian's ``/usr/bin/chromium`` (``apt-get install chromium``);
Playwright's own browser download is never used. The web server is the real
one ``fingerplat serve`` starts, on a fresh database of each backend.
Screenshots go to ``test-artifacts/screenshots/`` for people to look at.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright

from fingerplat.adapters.web.server import WebServer, start_web_server
from fingerplat.config import WebConfig
from fingerplat.domain.model import Context
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService

CHROMIUM = os.environ.get("FINGERPLAT_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
ROOT_NAME = "root"
ROOT_PASSWORD = "correct-horse-battery"
TIMEOUT_MS = 15_000


@pytest.fixture
async def web(service: FingerplatService, operator: Context) -> AsyncIterator[WebServer]:
    """The real web listener on a free port, with platform admin ``root``."""
    await service.credentials.add_admin(operator, ROOT_NAME, ROOT_PASSWORD)
    config = WebConfig.model_validate({"listen": ["127.0.0.1:0"]})
    server = await start_web_server(service, config, metrics=Metrics())
    yield server
    await server.drain(5)


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium (never skipped)")
    async with async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                            headless=True)
        try:
            yield chromium
        finally:
            await chromium.close()


#: What the browser printed about loads the Content-Security-Policy refused, per page.
_CSP_REFUSALS: dict[int, list[str]] = {}


def csp_refusals(page: Page) -> list[str]:
    """Console lines in which the browser refused something for the CSP (should be none).

    The site sends one strict policy (fingerplat/adapters/web/headers.py);
    a stylesheet, icon or form it blocked would show up here.
    """
    return _CSP_REFUSALS.get(id(page), [])


async def new_page(browser: Browser, *, width: int = 1280,
                   height: int = 860) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport={"width": width, "height": height},
                                        accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    refusals = _CSP_REFUSALS.setdefault(id(page), [])
    page.on("console", lambda message: refusals.append(message.text)
            if "Content Security Policy" in message.text else None)
    return context, page


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context, page = await new_page(browser)
    yield page
    refused = csp_refusals(page)
    await context.close()
    _CSP_REFUSALS.pop(id(page), None)
    assert not refused, f"the Content-Security-Policy blocked part of a page: {refused}"


async def screenshot(page: Page, name: str, backend: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}-{backend}.png"
    await page.screenshot(path=str(path), full_page=True)
    return path


async def login(page: Page, base: str, name: str, password: str) -> None:
    await page.goto(base + "/admin/")
    await page.get_by_label("Admin name").fill(name)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Log in").click()
    await page.wait_for_load_state()
