"""Attacks on the web listener through its input, over real sockets on both databases.

Each test is one thing a hostile client tried (issue 12, SPEC section 11) and
what it must get instead: a bounded answer, a 4xx with a clear error, never a
500, a traceback or a link built from its own ``Host`` header.
"""

from __future__ import annotations

import asyncio
import logging
import xmlrpc.client
from typing import Any

import aiohttp
import pytest

from fingerplat.adapters.web import xmlrpc as rpc
from fingerplat.domain.model import Context
from tests.integration.web.admin_client import ROOT_NAME, ROOT_PASSWORD, admin_client
from tests.integration.web.conftest import RunningWeb, Seeded, bearer

SUPERSCRIPT_TOKEN = "fp_²_abc"  # "²".isdigit() is true; int("²") is a ValueError


def rpc_body(method: str, *params: Any) -> bytes:
    return xmlrpc.client.dumps(params, method).encode()


async def rpc_call(http: aiohttp.ClientSession, url: str, body: bytes,
                   headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    async with http.post(f"{url}/RPC2", data=body,
                         headers={"Content-Type": "text/xml", **(headers or {})}) as resp:
        return resp.status, await resp.read()


def rpc_fault(answer: bytes) -> xmlrpc.client.Fault:
    with pytest.raises(xmlrpc.client.Fault) as info:
        xmlrpc.client.loads(answer)
    return info.value


# -- item 7: amplification is bounded ---------------------------------------------


async def many_users(web_server: RunningWeb, operator: Context, count: int) -> None:
    from fingerplat.domain.imports import ImportRecord

    records = [ImportRecord(line=i + 1, username=f"u{i:05d}") for i in range(count)]
    await web_server.service.imports.import_records(operator, None, records)


async def test_multicall_takes_at_most_50_calls(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    calls = [{"methodName": "getUser", "params": ["alice"]}] * 51
    status, answer = await rpc_call(http, web_server.url, rpc_body("system.multicall", calls))
    assert status == 200
    fault = rpc_fault(answer)
    assert fault.faultCode == rpc.FAULT_BAD_PARAMS
    assert "at most 50 calls, got 51" in fault.faultString
    status, answer = await rpc_call(http, web_server.url, rpc_body("system.multicall", calls[:50]))
    (results,), _ = xmlrpc.client.loads(answer)
    assert results == [["reading"]] * 50


async def test_many_get_users_cannot_amplify_an_answer(
    web_server: RunningWeb, seeded: Seeded, operator: Context, http: aiohttp.ClientSession
) -> None:
    """Issue 12: 100 getUsers on a 10,000-user tenant made a 61 MB answer."""
    await many_users(web_server, operator, 1500)
    body = rpc_body("system.multicall", [{"methodName": "getUsers", "params": []}] * 50)
    status, answer = await rpc_call(http, web_server.url, body)
    assert status == 200
    assert len(answer) < 200_000  # one page of names and 49 short faults
    (results,), _ = xmlrpc.client.loads(answer)
    first = results[0][0]
    assert len(first) == rpc.MAX_LISTED_USERS and first[:2] == ["alice", "bob"]
    assert all(r["faultCode"] == rpc.FAULT_TOO_LARGE for r in results[1:])
    assert "at most 1000 usernames" in results[1]["faultString"]
    # A plain getUsers() still answers at once, capped; getUsersPage pages through all.
    (names,), _ = xmlrpc.client.loads((await rpc_call(http, web_server.url,
                                                      rpc_body("getUsers")))[1])
    assert len(names) == rpc.MAX_LISTED_USERS
    seen: list[str] = []
    cursor = ""
    while True:
        (page,), _ = xmlrpc.client.loads((await rpc_call(
            http, web_server.url, rpc_body("getUsersPage", cursor, 600)))[1])
        assert page["total"] == 1502
        seen.extend(page["users"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 1502 and seen == sorted(seen) and "ghost" not in seen


async def test_get_users_page_refuses_bad_limits(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    for limit in (0, 1001, "10", True):
        fault = rpc_fault((await rpc_call(http, web_server.url,
                                          rpc_body("getUsersPage", "", limit)))[1])
        assert fault.faultCode == rpc.FAULT_BAD_PARAMS, limit
    fault = rpc_fault((await rpc_call(http, web_server.url,
                                      rpc_body("getUsersPage", "!!", 10)))[1])
    assert fault.faultCode == rpc.FAULT_INVALID and "invalid cursor" in fault.faultString


async def test_xmlrpc_body_over_the_limit_is_refused_before_parsing(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    calls = [{"methodName": "getUser", "params": ["x" * 2000]}] * 40
    body = rpc_body("system.multicall", calls)
    assert len(body) > web_server.settings.max_body_bytes
    _status, answer = await rpc_call(http, web_server.url, body)
    fault = rpc_fault(answer)
    assert fault.faultCode == rpc.FAULT_BAD_REQUEST and "too large" in fault.faultString

    async def chunked() -> Any:
        for _ in range(100):
            yield b"<!-- " + b"x" * 1000 + b" -->"

    async with http.post(f"{web_server.url}/RPC2", data=chunked(),
                         headers={"Content-Type": "text/xml"}) as resp:
        fault = rpc_fault(await resp.read())
    assert fault.faultCode == rpc.FAULT_BAD_REQUEST and "too large" in fault.faultString


# -- item 10: token ids are ASCII digits ------------------------------------------


async def test_superscript_token_id_is_a_401_not_a_500(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    url = f"{web_server.url}/api/v1/tenants/default/users/alice/status"
    async with http.put(url, json={"status": "pwned"}, headers=bearer(SUPERSCRIPT_TOKEN)) as r:
        assert r.status == 401
        assert "invalid token" in (await r.json())["error"]
    for token in ("fp_١٢_abc", "fp_１_abc", "fp_𝟙_abc"):  # other scripts' digits
        async with http.put(url, json={"status": "pwned"}, headers=bearer(token)) as r:
            assert r.status == 401, token
    async with http.get(f"{web_server.url}/api/v1/tenants/default/audit",
                        headers=bearer(SUPERSCRIPT_TOKEN)) as r:
        assert r.status == 401
    user = await web_server.service.public.public_user(
        await web_server.service.public.resolve_tenant(None), "alice")
    assert user is not None and user.status == "reading"


async def test_superscript_token_on_xmlrpc_is_an_auth_fault(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    import base64

    basic = base64.b64encode(f"script:{SUPERSCRIPT_TOKEN}".encode()).decode()
    status, answer = await rpc_call(http, web_server.url, rpc_body("setUser", "alice", "pwned"),
                                    {"Authorization": f"Basic {basic}"})
    assert status == 200
    fault = rpc_fault(answer)
    assert fault.faultCode == rpc.FAULT_UNAUTHENTICATED and "invalid token" in fault.faultString


@pytest.mark.parametrize("query", ["limit=²", "limit=٣", "limit=1" + "0" * 30, "cursor=²"])
async def test_non_ascii_numbers_in_parameters_are_400(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession, query: str
) -> None:
    for path in ("users", "audit"):
        async with http.get(f"{web_server.url}/api/v1/tenants/default/{path}?{query}",
                            headers=bearer(seeded.default_admin_token)) as r:
            # 422 like every other bad parameter value (docs/web.md, the OpenAPI document).
            assert r.status == 422, (path, query)
            assert "error" in await r.json()


# -- item 13: bad input is a 4xx, never a 500 ------------------------------------


@pytest.mark.parametrize(
    ("since", "words"),
    [
        ("2026-01-01", "must include a time zone"),
        ("2026-01-01T00:00:00", "must include a time zone"),
        ("9999-12-31T23:59:59-14:00", "out of range"),
        ("0001-01-01T00:00:00+14:00", "out of range"),
    ],
)
async def test_naive_or_out_of_range_audit_times_are_4xx(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession, since: str,
    words: str, caplog: pytest.LogCaptureFixture,
) -> None:
    for name in ("since", "until"):
        async with http.get(f"{web_server.url}/api/v1/tenants/default/audit",
                            params={name: since},
                            headers=bearer(seeded.default_admin_token)) as r:
            assert r.status == 422  # the API's status for a bad parameter value
            error = (await r.json())["error"]
            assert error.startswith(name) and words in error
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_aware_audit_times_still_filter(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    url = f"{web_server.url}/api/v1/tenants/default/audit"
    async with http.get(url, params={"since": "2000-01-01T00:00:00+14:00", "action": "status.set"},
                        headers=bearer(seeded.default_admin_token)) as r:
        assert r.status == 200
        assert sorted(e["target"] for e in (await r.json())["events"]) == [
            "alice@default", "ghost@default"]
    async with http.get(url, params={"since": "9999-12-31T23:59:59+14:00"},
                        headers=bearer(seeded.default_admin_token)) as r:
        assert r.status == 200 and (await r.json())["events"] == []


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("until=9999-12-31", "out of range"),
        ("since=2026-13-01", "must be a date"),
        ("before=²", "whole number"),
        ("before=٣", "whole number"),
    ],
)
async def test_admin_audit_filters_are_422(
    web_server: RunningWeb, operator: Context, query: str, words: str
) -> None:
    """A bad filter is invalid input: 422, as the API's audit answers (web/statuses.py)."""
    async with admin_client(web_server, operator) as admin:
        await admin.login(ROOT_NAME, ROOT_PASSWORD)
        for path in ("/admin/tenants/default/audit", "/admin/audit"):
            page = await admin.get(f"{path}?{query}")
            assert page.status == 422, (path, query)
            assert words in page.text


async def test_huge_multipart_login_field_is_refused_with_a_4xx(
    web_server: RunningWeb, operator: Context, caplog: pytest.LogCaptureFixture
) -> None:
    async with admin_client(web_server, operator) as admin:
        await admin.get("/admin/login")
        form = aiohttp.FormData()
        form.add_field("csrf_token", admin.csrf or "")
        form.add_field("name", ROOT_NAME)
        form.add_field("password", "x" * (600 * 1024))
        async with admin.session.post(admin.base + "/admin/login", data=form()) as r:
            assert r.status in (400, 413)
            assert "Internal error" not in await r.text()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


def multipart(*parts: bytes, boundary: str = "XyZ") -> tuple[bytes, dict[str, str]]:
    body = b"".join(b"--" + boundary.encode() + b"\r\n" + p + b"\r\n" for p in parts)
    return body + b"--" + boundary.encode() + b"--\r\n", {
        "Content-Type": f"multipart/form-data; boundary={boundary}"}


@pytest.mark.parametrize(
    "part",
    [
        b'Content-Disposition: form-data; name="name"\r\n'
        b"Content-Type: text/plain; charset=no-such-charset\r\n\r\nroot",
        b'Content-Disposition: form-data; name="name"\r\n\r\n\xff\xfe\xfa',
        b"Content-Disposition: form-data\r\n\r\nno name",
    ],
    ids=["unknown-charset", "not-utf8", "no-name"],
)
async def test_malformed_multipart_login_is_a_400(
    web_server: RunningWeb, operator: Context, caplog: pytest.LogCaptureFixture, part: bytes
) -> None:
    async with admin_client(web_server, operator) as admin:
        await admin.get("/admin/login")
        body, headers = multipart(part)
        async with admin.session.post(admin.base + "/admin/login", data=body,
                                      headers=headers) as r:
            assert r.status == 400
            assert "Form cannot be read" in await r.text()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_oversize_header_is_one_warning_not_a_traceback(
    web_server: RunningWeb, caplog: pytest.LogCaptureFixture
) -> None:
    host, port = web_server.url.removeprefix("http://").rsplit(":", 1)
    for path in ("/~alice", "/api/v1/tenants/default/users"):
        caplog.clear()
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\nX-Big: {'a' * 20_000}\r\n\r\n".encode())
        head = await asyncio.wait_for(reader.readline(), 10)
        writer.close()
        assert head.split()[1] in (b"400", b"431"), head
        with caplog.at_level(logging.DEBUG):
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
        assert not errors, [r.getMessage() for r in errors]
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "header" in warnings[0].getMessage().lower()


# -- item 16: links come from configuration, never from the Host header -----------

WF = "/.well-known/webfinger"


async def webfinger(http: aiohttp.ClientSession, url: str, resource: str,
                    host: str | None = None) -> tuple[int, str]:
    headers = {"Host": host} if host else {}
    async with http.get(url + WF, params={"resource": resource}, headers=headers) as resp:
        return resp.status, await resp.text()


async def test_webfinger_never_echoes_an_unknown_host(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    status, body = await webfinger(http, web_server.url, "acct:alice@evil.example",
                                   host="evil.example")
    assert status == 404 and "evil" not in body
    status, body = await webfinger(http, web_server.url, "acct:carol@acme.example",
                                   host="evil.example:666")
    assert status == 200 and "evil" not in body
    import json

    jrd = json.loads(body)
    assert jrd["aliases"] == [f"{web_server.url}/t/acme/~carol"]  # the listener, not the Host


async def test_on_a_tenant_host_another_tenants_acct_is_404(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    authority = web_server.url.split("://", 1)[1]
    for resource in ("acct:alice@default", f"acct:alice@{authority}",
                     "acct:alice@127.0.0.1"):
        status, _ = await webfinger(http, web_server.url, resource, host="acme.example")
        assert status == 404, resource
    status, body = await webfinger(http, web_server.url, "acct:carol@acme.example",
                                   host="acme.example")
    assert status == 200 and '"http://acme.example/~carol"' in body


async def test_public_url_builds_every_link(
    web_server_factory: Any, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    import json

    running = await web_server_factory(public_url="https://Finger.Example.org/")
    status, body = await webfinger(http, running.url, "acct:alice@finger.example.org",
                                   host="evil.example")
    assert status == 200
    assert json.loads(body)["links"][0]["href"] == "https://finger.example.org/~alice"
    status, body = await webfinger(http, running.url, "acct:carol@acme.example")
    assert json.loads(body)["aliases"] == ["https://finger.example.org/t/acme/~carol"]
    status, body = await webfinger(http, running.url, "acct:carol@acme.example",
                                   host="acme.example:8443")
    assert json.loads(body)["aliases"] == ["https://acme.example/~carol"]
    # The listener's own address is no longer a name for the default tenant.
    authority = running.url.split("://", 1)[1]
    status, _ = await webfinger(http, running.url, f"acct:alice@{authority}", host=authority)
    assert status == 404


async def test_public_url_is_checked_at_start() -> None:
    from fingerplat.config import from_mapping
    from fingerplat.domain.errors import InvalidInput

    for bad in ("finger.example.org", "ftp://x.example", "https://u:p@x.example",
                "https://x.example/?q=1"):
        with pytest.raises(InvalidInput, match=r"web\.public_url': .*(http|host name|query)"):
            from_mapping({"web": {"public_url": bad}})
    assert from_mapping({"web": {"public_url": "https://finger.example.org"}})


async def test_redirects_never_carry_the_host(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    for path in ("/alice", "/ALICE", "/~Alice", "/?user=alice", "/t/acme/carol"):
        async with http.get(web_server.url + path, headers={"Host": "evil.example"},
                            allow_redirects=False) as resp:
            assert resp.status in (301, 302), path
            location = resp.headers["Location"]
            assert location.startswith("/") and "evil" not in location, location
