"""The JSON API over a real server: reads, writes, every error status, token scopes."""

from __future__ import annotations

from typing import Any

import aiohttp

from fingerplat.domain.model import AuditQuery, Context
from tests.integration.web.conftest import RunningWeb, Seeded, WebFactory, bearer

T = "/api/v1/tenants"


async def call(
    http: aiohttp.ClientSession, method: str, url: str, *, token: str | None = None,
    json: Any = None, data: bytes | None = None, headers: dict[str, str] | None = None,
) -> tuple[int, Any, aiohttp.ClientResponse]:
    all_headers = {**(bearer(token) if token else {}), **(headers or {})}
    async with http.request(method, url, json=json, data=data, headers=all_headers,
                            allow_redirects=False) as resp:
        assert resp.content_type == "application/json", await resp.text()
        return resp.status, await resp.json(), resp


async def test_read_user_and_history_anonymously(
    web_server: RunningWeb, seeded: Seeded, operator: Context, http: aiohttp.ClientSession
) -> None:
    await web_server.service.users.set_status(operator, None, "alice", "writing")
    await web_server.service.users.set_plan(operator, None, "alice", "plan <b>text</b>")
    status, body, _ = await call(http, "GET", f"{web_server.url}{T}/default/users/Alice")
    assert status == 200
    assert body["username"] == "alice" and body["status"] == "writing"
    assert body["plan"] == "plan <b>text</b>" and body["full_name"] == "Alice Liddell"
    assert body["status_set_at"].endswith("Z")
    status, body, _ = await call(http, "GET", f"{web_server.url}{T}/default/users/alice/history")
    assert status == 200
    assert [h["status"] for h in body["history"]] == ["writing", "reading"]
    # Public answers say what changed and when, never who (SPEC 11).
    assert all(set(h) == {"status", "set_at", "expires_at"} for h in body["history"])


async def test_hidden_users_are_404_except_for_admins(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    url = f"{web_server.url}{T}/default/users/ghost"
    status, body, _ = await call(http, "GET", url)
    assert status == 404 and "error" in body
    status, _, _ = await call(http, "GET", f"{url}/history")
    assert status == 404
    status, body, _ = await call(http, "GET", url, token=seeded.default_admin_token)
    assert status == 200 and body["hidden"] is True and body["status"] == "invisible"
    status, _, _ = await call(http, "GET", url, token=seeded.acme_admin_token)
    assert status == 404  # another tenant's admin does not see hidden users
    status, body, resp = await call(http, "GET", url, token="fp_1_forged")
    assert status == 401 and body["error"] == "invalid token"  # a bad token is never ignored
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")


async def test_users_list_paginates_with_cursor(
    web_server: RunningWeb, seeded: Seeded, operator: Context, http: aiohttp.ClientSession
) -> None:
    for i in range(5):
        await web_server.service.users.add_user(operator, None, f"p{i}")
    names: list[str] = []
    url: str | None = f"{web_server.url}{T}/default/users?limit=3"
    pages = 0
    while url is not None:
        status, body, _ = await call(http, "GET", url)
        assert status == 200 and len(body["users"]) <= 3
        assert body["total"] == 7
        names.extend(u["username"] for u in body["users"])
        pages += 1
        cursor = body["next_cursor"]
        url = f"{web_server.url}{T}/default/users?limit=3&cursor={cursor}" if cursor else None
    assert pages == 3
    assert names == ["alice", "bob", "p0", "p1", "p2", "p3", "p4"]  # no hidden ghost
    status, body, _ = await call(http, "GET", f"{web_server.url}{T}/default/users?limit=10",
                                 token=seeded.default_admin_token)
    assert "ghost" in [u["username"] for u in body["users"]]
    for bad in ("limit=0", "limit=1001", "limit=abc", "cursor=%21%21"):
        status, body, _ = await call(http, "GET", f"{web_server.url}{T}/default/users?{bad}")
        assert status == 422 and body["error"], bad


async def test_closed_user_list_is_403_for_the_public(
    web_server: RunningWeb, seeded: Seeded, operator: Context, http: aiohttp.ClientSession
) -> None:
    await web_server.service.tenants.update_tenant(operator, "acme", list_users=False)
    status, body, _ = await call(http, "GET", f"{web_server.url}{T}/acme/users")
    assert status == 403 and "does not publish" in body["error"]
    status, body, _ = await call(http, "GET", f"{web_server.url}{T}/acme/users",
                                 token=seeded.acme_admin_token)
    assert status == 200 and [u["username"] for u in body["users"]] == ["carol"]


async def test_write_status_and_plan_with_own_token(
    web_server: RunningWeb, seeded: Seeded, operator: Context, http: aiohttp.ClientSession
) -> None:
    url = f"{web_server.url}{T}/default/users/alice"
    status, body, _ = await call(http, "PUT", f"{url}/status", token=seeded.alice_token,
                                 json={"status": "  <i>on a call</i>  "})
    assert status == 200 and body["status"] == "<i>on a call</i>"
    status, body, _ = await call(http, "PUT", f"{url}/plan", token=seeded.alice_token,
                                 json={"plan": "line 1\r\nline 2\n"})
    assert status == 200 and body["plan"] == "line 1\nline 2"
    status, body, _ = await call(http, "GET", f"{url}/history", token=seeded.alice_token)
    assert body["history"][0]["channel"] == "api"
    assert body["history"][0]["actor"].startswith("token:")
    status, body, _ = await call(http, "DELETE", f"{url}/status", token=seeded.alice_token)
    assert status == 200 and body["status"] is None and body["status_set_at"] is None
    events = await web_server.service.audit.audit_log(
        operator, AuditQuery(tenant="default", username="alice")
    )
    actions = [(e.action, e.channel) for e in events[:3]]
    assert actions == [("status.clear", "api"), ("plan.set", "api"), ("status.set", "api")]


async def test_every_error_status_of_a_write(
    web_server_factory: WebFactory, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    running = await web_server_factory(max_body_bytes=2048)
    url = f"{running.url}{T}/default/users/alice/status"
    cases: list[tuple[int, dict[str, Any], str]] = [
        (401, {"json": {"status": "x"}}, "Bearer"),
        (401, {"json": {"status": "x"}, "token": "fp_1_not-a-real-secret"}, "invalid token"),
        (401, {"json": {"status": "x"}, "headers": {"Authorization": "Basic YTpi"}}, "Bearer"),
        (403, {"json": {"status": "x"}, "token": seeded.bob_token}, "may not change"),
        (400, {"data": b"{not json", "token": seeded.alice_token}, "not valid JSON"),
        (422, {"json": ["status"], "token": seeded.alice_token}, "JSON object"),
        (422, {"json": {"text": "x"}, "token": seeded.alice_token}, "missing field 'status'"),
        (422, {"json": {"status": 5}, "token": seeded.alice_token}, "must be a string"),
        (422, {"json": {"status": "x" * 281}, "token": seeded.alice_token}, "at most 280"),
        (422, {"json": {"status": "a\nb"}, "token": seeded.alice_token}, "single line"),
        (422, {"json": {"status": "\x1b[2J"}, "token": seeded.alice_token}, "control"),
        (413, {"data": b'{"status": "' + b"x" * 4000 + b'"}', "token": seeded.alice_token},
         "too large"),
    ]
    for expected, kwargs, words in cases:
        status, body, resp = await call(http, "PUT", url, **kwargs)
        assert status == expected, (kwargs, body)
        assert words in body["error"], (expected, body)
        if expected == 401:
            assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    # 409: a compare-and-set whose expectation is stale changes nothing.
    status, body, _ = await call(http, "PUT", url, token=seeded.alice_token,
                                 json={"status": "mine", "if_status": "not what it is"})
    assert status == 409 and "changed meanwhile" in body["error"]
    status, body, _ = await call(http, "PUT", url, token=seeded.alice_token,
                                 json={"status": "mine", "if_status": None})
    assert status == 409  # alice has a status, so "no status" is stale too
    status, body, _ = await call(http, "PUT", url, token=seeded.alice_token,
                                 json={"status": "x", "if_status": 3})
    assert status == 422 and "if_status" in body["error"]
    # 404: unknown user, unknown tenant, malformed names; all JSON.
    for path in ("default/users/nobody/status", "nope/users/alice/status",
                 "default/users/%3Cx%3E/status", "UPPER_bad!/users/alice/status"):
        status, body, _ = await call(http, "PUT", f"{running.url}{T}/{path}",
                                     token=seeded.platform_token, json={"status": "x"})
        assert status == 404 and body["error"], path
    status, body, _ = await call(http, "GET", f"{running.url}/api/v1/nothing-here")
    assert status == 404 and body["error"]
    status, body, resp = await call(http, "POST", url, token=seeded.alice_token)
    assert status == 405 and body["error"]
    assert set(resp.headers["Allow"].split(",")) == {"PUT", "DELETE"}
    # Nothing was changed by any refused request; a fresh compare-and-set works.
    status, body, _ = await call(http, "GET", f"{running.url}{T}/default/users/alice")
    assert body["status"] == "reading"
    status, body, _ = await call(http, "PUT", url, token=seeded.alice_token,
                                 json={"status": "mine", "if_status": "reading"})
    assert status == 200 and body["status"] == "mine"


ROUTES = {  # route -> (method, body, path in the default tenant, path in acme)
    "status-put": ("PUT", {"status": "hijacked"}, "users/alice/status", "users/carol/status"),
    "status-delete": ("DELETE", None, "users/alice/status", "users/carol/status"),
    "plan-put": ("PUT", {"plan": "hijacked"}, "users/alice/plan", "users/carol/plan"),
    "audit-get": ("GET", None, "audit", "audit"),
}


async def test_tokens_of_another_tenant_get_403_on_every_protected_route(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    refused = [
        ("default", seeded.acme_admin_token), ("default", seeded.acme_carol_token),
        ("acme", seeded.default_admin_token), ("acme", seeded.alice_token),
    ]
    for route, (method, body, default_path, acme_path) in ROUTES.items():
        paths = {"default": f"{T}/default/{default_path}", "acme": f"{T}/acme/{acme_path}"}
        for tenant, token in refused:
            status, answer, _ = await call(http, method, f"{web_server.url}{paths[tenant]}",
                                           token=token, json=body)
            assert status == 403, (route, tenant, answer)
            assert answer["error"]
    # Nothing from the refused attempts reached either tenant's user.
    _, alice, _ = await call(http, "GET", f"{web_server.url}{T}/default/users/alice")
    _, carol, _ = await call(http, "GET", f"{web_server.url}{T}/acme/users/carol")
    assert (alice["status"], alice["plan"]) == ("reading", "")
    assert (carol["status"], carol["plan"]) == ("at the anvil factory", "")
    # The platform token may; so may the tenant's own admin.
    for route, (method, body, default_path, acme_path) in ROUTES.items():
        for path, token in ((f"{T}/default/{default_path}", seeded.platform_token),
                            (f"{T}/acme/{acme_path}", seeded.acme_admin_token)):
            status, _, _ = await call(http, method, f"{web_server.url}{path}",
                                      token=token, json=body)
            assert status == 200, (route, path)


async def test_audit_for_admins_with_pagination_and_filters(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    url = f"{web_server.url}{T}/default"
    for text in ("one", "two", "three"):
        status, _, _ = await call(http, "PUT", f"{url}/users/bob/status", token=seeded.bob_token,
                                  json={"status": text})
        assert status == 200
    await call(http, "PUT", f"{url}/users/alice/status", token=seeded.bob_token,
               json={"status": "nope"})  # refused and audited
    status, body, _ = await call(http, "GET", f"{url}/audit", token=seeded.bob_token)
    assert status == 403
    status, body, _ = await call(http, "GET", f"{url}/audit")
    assert status == 401
    seen: list[dict[str, Any]] = []
    next_url: str | None = f"{url}/audit?user=bob&action=status.set&limit=2"
    while next_url:
        status, body, _ = await call(http, "GET", next_url, token=seeded.default_admin_token)
        assert status == 200
        seen.extend(body["events"])
        cursor = body["next_cursor"]
        next_url = (f"{url}/audit?user=bob&action=status.set&limit=2&cursor={cursor}"
                    if cursor else None)
    api_sets = [e["after"]["status"] for e in seen if e["channel"] == "api"]
    assert api_sets == ["three", "two", "one"]
    assert all(e["tenant"] == "default" and e["remote_addr"] == "127.0.0.1" for e in seen)
    status, body, _ = await call(http, "GET", f"{url}/audit?action=status.set&user=alice",
                                 token=seeded.default_admin_token)
    assert status == 200
    status, body, _ = await call(http, "GET", f"{url}/audit?user=alice",
                                 token=seeded.default_admin_token)
    denied = [e for e in body["events"] if e["outcome"] == "denied"]
    assert denied and denied[0]["action"] == "status.set" and denied[0]["channel"] == "api"
    for bad in ("since=yesterday", "cursor=x", "limit=0"):
        status, _, _ = await call(http, "GET", f"{url}/audit?{bad}",
                                  token=seeded.default_admin_token)
        assert status == 422, bad


async def test_openapi_documents_exactly_the_api_routes(
    web_server: RunningWeb, http: aiohttp.ClientSession
) -> None:
    status, doc, _ = await call(http, "GET", f"{web_server.url}/api/v1/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.")
    documented = {(path, method.upper()) for path, ops in doc["paths"].items() for method in ops}
    served = set()
    for resource in web_server.server.app.router.resources():
        path = resource.canonical
        if not path.startswith("/api/"):
            continue
        for route in resource:
            if route.method != "HEAD":
                served.add((path, route.method))
    assert documented == served
    spec_routes = {
        ("/api/v1/tenants/{tenant}/users", "GET"),
        ("/api/v1/tenants/{tenant}/users/{user}", "GET"),
        ("/api/v1/tenants/{tenant}/users/{user}/history", "GET"),
        ("/api/v1/tenants/{tenant}/users/{user}/status", "PUT"),
        ("/api/v1/tenants/{tenant}/users/{user}/status", "DELETE"),
        ("/api/v1/tenants/{tenant}/users/{user}/plan", "PUT"),
        ("/api/v1/tenants/{tenant}/audit", "GET"),
    }
    assert spec_routes <= documented
    # Every documented status code of a write is one the API really answers with.
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert op["responses"], path
            for code, response in op["responses"].items():
                assert code.isdigit() and response["description"], (path, code)
    refs = {ref.split("/")[-1] for ref in _refs(doc)}
    assert refs <= set(doc["components"]["schemas"])


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        for value in node.values():
            found.extend(_refs(value))
        return found
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item)]
    return []
