"""The listener itself: binding, health, metrics, HTTPS, shutdown."""

from __future__ import annotations

import aiohttp

from tests.integration.web.conftest import RunningWeb, WebFactory


async def test_healthz_answers_ok(web_server: RunningWeb, http: aiohttp.ClientSession) -> None:
    async with http.get(f"{web_server.url}/healthz") as resp:
        assert resp.status == 200
        assert (await resp.json())["database"] == "ok"


async def test_two_listeners_both_answer(
    web_server_factory: WebFactory, http: aiohttp.ClientSession
) -> None:
    running = await web_server_factory(listen=["127.0.0.1:0", "127.0.0.1:0"])
    addresses = running.server.addresses
    assert len(addresses) == 2 and addresses[0] != addresses[1]
    for address in addresses:
        assert not address.endswith(":0")
        async with http.get(f"{address}/healthz") as resp:
            assert resp.status == 200
