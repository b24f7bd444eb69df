"""WebFinger (RFC 7033) over a real server."""

from __future__ import annotations

from typing import Any

import aiohttp

from tests.integration.web.conftest import RunningWeb, Seeded

WF = "/.well-known/webfinger"


async def finger(http: aiohttp.ClientSession, url: str, params: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None) -> tuple[int, Any, aiohttp.ClientResponse]:
    async with http.get(url + WF, params=params, headers=headers) as resp:
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        return resp.status, await resp.json(content_type=None), resp


async def test_jrd_for_a_user_of_a_tenant_domain(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    status, jrd, resp = await finger(http, web_server.url, {"resource": "acct:carol@acme.example"})
    assert status == 200 and resp.content_type == "application/jrd+json"
    assert jrd["subject"] == "acct:carol@acme.example"
    profile = f"{web_server.url}/t/acme/~carol"
    assert jrd["aliases"] == [profile]
    assert jrd["links"] == [{"rel": "http://webfinger.net/rel/profile-page",
                             "type": "text/html", "href": profile}]
    assert jrd["properties"]["urn:fingerplat:status"] == "at the anvil factory"
    assert jrd["properties"]["urn:fingerplat:full-name"] == "Carol Acme"
    async with http.get(profile) as page:  # the link really leads to the profile page
        assert page.status == 200 and "at the anvil factory" in await page.text()


async def test_host_of_the_request_names_its_tenant(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    host = web_server.url.split("://", 1)[1]
    status, jrd, _ = await finger(http, web_server.url, {"resource": f"acct:Alice@{host}"})
    assert status == 200 and jrd["subject"] == f"acct:alice@{host}"
    assert jrd["properties"]["urn:fingerplat:status"] == "reading"
    status, jrd, _ = await finger(http, web_server.url, {"resource": "acct:carol@acme.example"},
                                  headers={"Host": "acme.example"})
    assert status == 200 and jrd["aliases"] == ["http://acme.example/~carol"]
    status, jrd, _ = await finger(http, web_server.url, {"resource": "acct:alice@default"})
    assert status == 200  # a tenant slug works as the domain part too
    # acct: URIs carry no port: the host the request was sent to, without its port.
    bare = host.rpartition(":")[0]
    status, jrd, _ = await finger(http, web_server.url, {"resource": f"acct:alice@{bare}"})
    assert status == 200 and jrd["subject"] == f"acct:alice@{bare}"


async def test_rel_filters_links(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    status, jrd, _ = await finger(http, web_server.url,
                                  {"resource": "acct:carol@acme.example", "rel": "self"})
    assert status == 200 and jrd["links"] == []


async def test_errors(web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession) -> None:
    for params in ({}, {"resource": "mailto:carol@acme.example"}, {"resource": "acct:carol"},
                   {"resource": "acct:@acme.example"}):
        status, body, _ = await finger(http, web_server.url, params)
        assert status == 400 and body["error"], params
    for resource in ("acct:ghost@default", "acct:nobody@acme.example",
                     "acct:carol@unknown.example", "acct:alice@acme.example",
                     "acct:<script>@acme.example"):
        status, body, _ = await finger(http, web_server.url, {"resource": resource})
        assert status == 404 and body["error"], resource
        assert "invisible" not in str(body)
