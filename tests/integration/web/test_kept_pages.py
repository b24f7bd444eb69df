"""Kept user pages over a real server: the next page after any change shows the change.

The service here has its read cache on, as ``serve`` wires it, so a user's
rendered page is kept between requests (fingerplat/adapters/web/kept_pages.py).
Each test first makes the cache hold the page (and checks that the second
answer came from it), so a kept page that missed an invalidation fails it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from fingerplat.config import Config
from fingerplat.domain.model import Context
from fingerplat.service import FingerplatService
from fingerplat.service.cache import ReadCache
from tests.integration.web.conftest import RunningWeb, WebFactory


@pytest.fixture
async def cache(service: FingerplatService) -> AsyncIterator[ReadCache]:
    yield service.enable_read_cache()
    service.disable_read_cache()


async def get(http: aiohttp.ClientSession, url: str,
              headers: dict[str, str] | None = None) -> tuple[int, str]:
    async with http.get(url, allow_redirects=False, headers=headers) as resp:
        return resp.status, await resp.text()


async def kept(http: aiohttp.ClientSession, cache: ReadCache, url: str,
               headers: dict[str, str] | None = None) -> str:
    """Ask twice; the second page must come from the cache, unchanged."""
    status, first = await get(http, url, headers)
    assert status == 200, first
    hits = cache.hits
    status, second = await get(http, url, headers)
    assert status == 200
    assert cache.hits > hits, "the page was not served from the cache"
    assert second == first
    return second


async def test_status_plan_and_profile_changes_show_on_the_next_page(
    cache: ReadCache, web_server: RunningWeb, operator: Context, http: aiohttp.ClientSession
) -> None:
    service = web_server.service
    url = f"{web_server.url}/~alice"
    await service.users.add_user(operator, None, "alice", full_name="Alice Liddell")
    await service.users.set_status(operator, None, "alice", "asleep")
    page = await kept(http, cache, url)
    assert "asleep" in page and "No plan." in page

    await service.users.set_status(operator, None, "alice", "awake")
    page = await kept(http, cache, url)
    assert '<p class="status-text">awake</p>' in page
    assert "asleep" in page  # now in the history list

    await service.users.set_plan(operator, None, "alice", "tea at four")
    assert "tea at four" in await kept(http, cache, url)

    await service.users.edit_user(operator, None, "alice", full_name="Alice Pleasance")
    assert "Alice Pleasance" in await kept(http, cache, url)

    await service.users.edit_user(operator, None, "alice", hidden=True)
    status, _ = await get(http, url)
    assert status == 404
    await service.users.edit_user(operator, None, "alice", hidden=False)
    status, page = await get(http, url)
    assert status == 200 and "awake" in page

    await service.users.remove_user(operator, None, "alice")
    status, _ = await get(http, url)
    assert status == 404


async def test_tenants_never_share_a_kept_page(
    cache: ReadCache, web_server: RunningWeb, operator: Context, http: aiohttp.ClientSession
) -> None:
    service = web_server.service
    await service.tenants.create_tenant(operator, "acme", name="Acme", domains=["acme.example"])
    await service.users.add_user(operator, None, "alice", full_name="Default Alice")
    await service.users.add_user(operator, "acme", "alice", full_name="Acme Alice")
    await service.users.set_status(operator, None, "alice", "at home")
    await service.users.set_status(operator, "acme", "alice", "at work")

    home = await kept(http, cache, f"{web_server.url}/~alice")
    by_path = await kept(http, cache, f"{web_server.url}/t/acme/~alice")
    by_host = await kept(http, cache, f"{web_server.url}/~alice", {"Host": "acme.example"})
    assert "Default Alice" in home and "at home" in home and "at work" not in home
    for page in (by_path, by_host):
        assert "Acme Alice" in page and "at work" in page and "at home" not in page
    assert 'href="/t/acme/"' in by_path and 'href="/t/acme/"' not in by_host

    # A tenant change (its name is on every page) drops the tenant's pages.
    await service.tenants.update_tenant(operator, "acme", name="Acme Corporation")
    assert "Acme Corporation" in await kept(http, cache, f"{web_server.url}/t/acme/~alice")
    # A change to one tenant's alice leaves the other's page right.
    await service.users.set_status(operator, "acme", "alice", "in a meeting")
    assert "at home" in await kept(http, cache, f"{web_server.url}/~alice")
    assert "in a meeting" in await kept(http, cache, f"{web_server.url}/t/acme/~alice")


async def test_a_template_that_reads_the_clock_is_served_fresh_not_kept(
    cache: ReadCache, web_server_factory: WebFactory, operator: Context, tmp_path: Path,
    http: aiohttp.ClientSession,
) -> None:
    (tmp_path / "user.html").write_text(
        "<p>{{ user.username }}: {{ user.status }} ({{ user.status_set_at | ago(now) }})"
        " at {{ now.isoformat() }}</p>", encoding="utf-8")
    running = await web_server_factory(templates=str(tmp_path))
    await running.service.users.add_user(operator, None, "alice")
    await running.service.users.set_status(operator, None, "alice", "reading")
    shown = []
    for _ in range(2):
        before = dt.datetime.now(dt.UTC)
        status, page = await get(http, f"{running.url}/~alice")
        after = dt.datetime.now(dt.UTC)
        assert status == 200
        prefix, stamp = page.removesuffix("</p>").split(" at ")
        assert prefix == "<p>alice: reading (just now)"
        assert before <= dt.datetime.fromisoformat(stamp) <= after  # the time of this request
        shown.append(stamp)
    assert shown[0] != shown[1]


async def test_reloaded_templates_are_used_at_once(
    cache: ReadCache, web_server_factory: WebFactory, operator: Context, tmp_path: Path,
    http: aiohttp.ClientSession,
) -> None:
    template = tmp_path / "user.html"
    template.write_text("<p>old {{ user.status }}</p>", encoding="utf-8")
    running = await web_server_factory(templates=str(tmp_path))
    await running.service.users.add_user(operator, None, "alice")
    await running.service.users.set_status(operator, None, "alice", "reading")
    assert await kept(http, cache, f"{running.url}/~alice") == "<p>old reading</p>"

    template.write_text("<p>new {{ user.status }}</p>", encoding="utf-8")
    config = Config.model_validate({"web": {"listen": ["127.0.0.1:0"],
                                            "templates": str(tmp_path)}})
    running.server.reconfigure(config)  # what SIGHUP does
    assert await kept(http, cache, f"{running.url}/~alice") == "<p>new reading</p>"
