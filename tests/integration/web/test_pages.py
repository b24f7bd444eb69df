"""Public pages over a real server: directory, user pages, escaping, routing, overrides."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest

from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.model import Context
from tests.integration.web.conftest import RunningWeb, Seeded, WebFactory


async def fetch(
    http: aiohttp.ClientSession, url: str, headers: dict[str, str] | None = None
) -> tuple[int, str, aiohttp.ClientResponse]:
    async with http.get(url, allow_redirects=False, headers=headers) as resp:
        return resp.status, await resp.text(), resp


async def test_directory_lists_visible_users_only(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await fetch(http, f"{web_server.url}/")
    assert status == 200
    assert "Alice Liddell" in body and "reading" in body
    assert "Bob Builder" in body
    assert "ghost" not in body.lower()  # hidden users are never listed
    assert "carol" not in body.lower()  # another tenant's user


async def test_user_page_shows_status_when_and_plan(
    web_server: RunningWeb, seeded: Seeded, operator: Context, http: aiohttp.ClientSession
) -> None:
    plan = "Follow the white rabbit.\nDrink me."
    await web_server.service.users.set_plan(operator, None, "alice", plan)
    status, body, _ = await fetch(http, f"{web_server.url}/~alice")
    assert status == 200
    assert "Alice Liddell" in body
    assert "reading" in body
    assert "just now" in body  # relative time
    assert " UTC" in body  # absolute time
    assert "Follow the white rabbit.\nDrink me." in body
    assert "Down the rabbit hole" in body  # project


async def test_status_with_script_is_inert(
    web_server: RunningWeb, seeded: Seeded, operator: Context, http: aiohttp.ClientSession
) -> None:
    evil = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    await web_server.service.users.set_status(operator, None, "bob", evil)
    await web_server.service.users.set_plan(
        operator, None, "bob", "</pre><script>alert(2)</script>")
    for path in ("/", "/~bob"):
        status, body, resp = await fetch(http, f"{web_server.url}{path}")
        assert status == 200
        assert "<script>" not in body and "<img src=x" not in body
        assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in body
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src" not in csp and "default-src 'none'" in csp  # no script may run
        assert "frame-ancestors 'none'" in csp
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "no-referrer"
    _, body, _ = await fetch(http, f"{web_server.url}/~bob")
    assert "&lt;/pre&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in body


async def test_unknown_and_hidden_users_get_the_same_404(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    s1, body1, _ = await fetch(http, f"{web_server.url}/~nobody")
    s2, body2, _ = await fetch(http, f"{web_server.url}/~ghost")
    assert s1 == s2 == 404
    assert "No such user" in body1 and "No such user" in body2
    assert "invisible" not in body2 and "Hidden Ghost" not in body2
    s3, body3, _ = await fetch(http, f"{web_server.url}/~<b>x</b>")
    assert s3 == 404 and "<b>x</b>" not in body3


async def test_tutorial_path_redirects_and_reserved_paths_do_not(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    status, _, resp = await fetch(http, f"{web_server.url}/alice")
    assert status == 301 and resp.headers["Location"] == "/~alice"
    status, _, resp = await fetch(http, f"{web_server.url}/Alice")
    assert status == 301 and resp.headers["Location"] == "/~alice"
    status, _, _ = await fetch(http, f"{web_server.url}/api")
    assert status == 404
    status, _, resp = await fetch(http, f"{web_server.url}/t/acme/carol")
    assert status == 301 and resp.headers["Location"] == "/t/acme/~carol"


async def test_lookup_form_redirects_to_the_user_page(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    status, _, resp = await fetch(http, f"{web_server.url}/?user=Bob")
    assert status == 302 and resp.headers["Location"] == "/~bob"


async def test_tenant_by_path_prefix(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await fetch(http, f"{web_server.url}/t/acme/")
    assert status == 200 and "Carol Acme" in body and "Alice" not in body
    assert 'href="/t/acme/~carol"' in body  # links keep the prefix
    status, body, _ = await fetch(http, f"{web_server.url}/t/acme/~carol")
    assert status == 200 and "at the anvil factory" in body
    status, _, _ = await fetch(http, f"{web_server.url}/t/acme/~alice")
    assert status == 404  # alice is in the default tenant, not acme
    status, _, _ = await fetch(http, f"{web_server.url}/t/no-such-tenant/")
    assert status == 404
    status, _, resp = await fetch(http, f"{web_server.url}/t/acme")
    assert status == 301 and resp.headers["Location"] == "/t/acme/"


async def test_tenant_by_host_header(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    host = {"Host": "ACME.example:8000"}
    status, body, _ = await fetch(http, f"{web_server.url}/", headers=host)
    assert status == 200 and "Carol Acme" in body and "Alice" not in body
    assert 'href="/~carol"' in body
    status, body, _ = await fetch(http, f"{web_server.url}/~carol", headers=host)
    assert status == 200 and "at the anvil factory" in body
    # A Host naming a slug is not a domain: the default tenant answers.
    status, body, _ = await fetch(http, f"{web_server.url}/", headers={"Host": "acme"})
    assert status == 200 and "Alice" in body
    # Unknown host names fall back to the default tenant too.
    status, body, _ = await fetch(http, f"{web_server.url}/~alice",
                                  headers={"Host": "www.unknown.example"})
    assert status == 200 and "reading" in body
    # A branded domain does not serve another tenant through /t/<slug>/.
    status, _, _ = await fetch(http, f"{web_server.url}/t/default/~alice", headers=host)
    assert status == 404


async def test_closed_directory_is_a_polite_page(
    web_server: RunningWeb, seeded: Seeded, operator: Context, http: aiohttp.ClientSession
) -> None:
    await web_server.service.tenants.update_tenant(operator, "acme", list_users=False)
    status, body, _ = await fetch(http, f"{web_server.url}/t/acme/")
    assert status == 200
    assert "not public" in body and "Carol" not in body
    status, body, _ = await fetch(http, f"{web_server.url}/t/acme/~carol")
    assert status == 200 and "at the anvil factory" in body  # single pages stay public


async def test_directory_pages_through_many_users(
    web_server: RunningWeb, operator: Context, http: aiohttp.ClientSession
) -> None:
    for i in range(55):
        await web_server.service.users.add_user(operator, None, f"u{i:03d}")
    status, body, _ = await fetch(http, f"{web_server.url}/")
    assert status == 200 and "~u000" in body and "~u049" in body and "~u050" not in body
    assert "Next page" in body
    next_href = body.split('rel="next" href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    status, body, _ = await fetch(http, f"{web_server.url}{next_href}")
    assert status == 200 and "~u050" in body and "~u054" in body and "~u049" not in body
    assert "Next page" not in body
    status, body, _ = await fetch(http, f"{web_server.url}/?cursor=!!bad!!")
    assert status == 422 and "invalid cursor" in body


async def test_search_filters_the_directory(
    web_server: RunningWeb, seeded: Seeded, http: aiohttp.ClientSession
) -> None:
    status, body, _ = await fetch(http, f"{web_server.url}/?q=builder")
    assert status == 200 and "Bob Builder" in body and "Alice" not in body


async def test_operator_template_override_is_used(
    web_server_factory: WebFactory, seeded: Seeded, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    (tmp_path / "user.html").write_text(
        "<!doctype html><p class=custom>Custom page for {{ user.username }}: "
        "{{ user.status }}</p>", encoding="utf-8")
    running = await web_server_factory(templates=str(tmp_path))
    status, body, _ = await fetch(http, f"{running.url}/~alice")
    assert status == 200
    assert body == "<!doctype html><p class=custom>Custom page for alice: reading</p>"
    # Templates that are not overridden still come from the built-in set.
    status, body, _ = await fetch(http, f"{running.url}/")
    assert status == 200 and "Alice Liddell" in body
    with pytest.raises(InvalidInput, match=r"web\.templates: .* is not a directory"):
        await web_server_factory(templates=str(tmp_path / "missing"))


async def test_static_stylesheet_is_served(
    web_server: RunningWeb, http: aiohttp.ClientSession
) -> None:
    status, body, resp = await fetch(http, f"{web_server.url}/static/site.css")
    assert status == 200 and resp.content_type == "text/css" and ".person" in body


async def test_unknown_path_is_a_404_page_not_a_traceback(
    web_server: RunningWeb, http: aiohttp.ClientSession
) -> None:
    status, body, resp = await fetch(http, f"{web_server.url}/a/b/c")
    assert status == 404 and resp.content_type == "text/html"
    assert "Traceback" not in body and "Not found" in body


async def test_a_broken_override_template_is_a_500_without_a_traceback(
    web_server_factory: WebFactory, seeded: Seeded, tmp_path: Path, http: aiohttp.ClientSession
) -> None:
    (tmp_path / "base.html").write_text("{{ 1 / 0 }}{% block content %}{% endblock %}")
    running = await web_server_factory(templates=str(tmp_path))
    status, body, _ = await fetch(http, f"{running.url}/~alice")
    assert status == 500
    assert "internal error" in body and "Traceback" not in body and "ZeroDivision" not in body
    status, body, _ = await fetch(http, f"{running.url}/healthz")
    assert status == 200
