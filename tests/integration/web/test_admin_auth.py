"""Admin UI login, sessions, throttling and CSRF over the real web server, on both databases."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from fingerplat.adapters.web.admin import build_admin_app
from fingerplat.domain.model import Context
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService
from tests.integration.web.admin_client import (
    ROOT_NAME,
    ROOT_PASSWORD,
    AdminClient,
    admin_client,
    text_of,
    web_audit,
)
from tests.integration.web.conftest import RunningWeb


@pytest.fixture
async def admin(web_server: RunningWeb, operator: Context) -> AsyncIterator[AdminClient]:
    async with admin_client(web_server, operator) as client:
        yield client


async def test_anonymous_visitor_is_sent_to_login(admin: AdminClient) -> None:
    page = await admin.get("/admin/tenants", follow=False)
    assert page.status == 303
    assert page.location == "/admin/login?next=/admin/tenants"
    page = await admin.get("/admin/login")
    assert page.status == 200
    assert "Log in" in page.text and 'name="csrf_token"' in page.text
    assert "default-src 'none'" in page.headers["Content-Security-Policy"]
    assert page.headers["Cache-Control"] == "no-store"


async def test_login_sets_a_fresh_httponly_strict_cookie(
    admin: AdminClient, web_server: RunningWeb, operator: Context
) -> None:
    login_page = await admin.get("/admin/login")
    # The anonymous form gets no session: only a nonce cookie for its CSRF token.
    assert admin.cookie() is None
    nonce = admin.cookie("fingerplat_admin_login")
    assert nonce and nonce not in login_page.text
    cookie = login_page.set_cookie[0]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/admin" in cookie
    assert "Secure" not in cookie  # plain HTTP listener
    page = await admin.post("/admin/login", {"name": ROOT_NAME, "password": ROOT_PASSWORD,
                                             "next": "/admin/admins"})
    assert page.status == 303 and page.location == "/admin/admins"
    session_id = admin.cookie()
    assert session_id and len(session_id) >= 43  # 256 random bits
    assert "HttpOnly" in page.set_cookie[0] and "SameSite=Strict" in page.set_cookie[0]
    page = await admin.get("/admin/tenants")
    assert page.status == 200
    assert "Tenants" in page.text and "admin:root" in page.text
    logins = await web_audit(web_server.service, operator, "auth.login")
    assert [(e.actor, e.outcome) for e in logins] == [("admin:root", "ok")]
    assert logins[0].remote_addr == "127.0.0.1"
    # A second login gets another session id: nothing chosen before a login survives it.
    await admin.post("/admin/logout")
    await admin.login(ROOT_NAME, ROOT_PASSWORD)
    assert admin.cookie() not in (None, session_id)


async def test_open_redirect_after_login_is_refused(admin: AdminClient) -> None:
    await admin.get("/admin/login")
    page = await admin.post("/admin/login", {"name": ROOT_NAME, "password": ROOT_PASSWORD,
                                             "next": "//evil.example/admin/"})
    assert page.status == 303 and page.location == "/admin/"


async def test_wrong_password_is_refused_and_audited(
    admin: AdminClient, web_server: RunningWeb, operator: Context
) -> None:
    page = await admin.login(ROOT_NAME, "not-the-password")
    assert page.status == 401
    assert "Wrong admin name or password." in text_of(page.text)
    assert (await admin.get("/admin/tenants", follow=False)).status == 303
    denied = await web_audit(web_server.service, operator, "auth.login")
    assert [(e.outcome, e.target) for e in denied] == [("denied", "admin:root")]


async def test_unknown_admin_gets_the_same_answer(admin: AdminClient) -> None:
    page = await admin.login("nobody", "whatever-password")
    assert page.status == 401
    assert "Wrong admin name or password." in text_of(page.text)


async def test_repeated_failures_throttle_logins(admin: AdminClient) -> None:
    for _ in range(4):
        page = await admin.login(ROOT_NAME, "wrong-password")
        assert page.status == 401
        assert "Too many" not in page.text
    page = await admin.login(ROOT_NAME, "wrong-password")  # the fifth failure locks
    assert page.status == 401
    assert "Too many failed logins: wait 5 minutes" in text_of(page.text)
    # Even the right password is refused while locked, without being checked.
    page = await admin.login(ROOT_NAME, ROOT_PASSWORD)
    assert page.status == 429
    assert "Too many failed logins. Wait" in text_of(page.text)
    assert 0 < int(page.headers["Retry-After"]) <= 300
    assert (await admin.get("/admin/tenants", follow=False)).status == 303


async def test_logout_ends_the_session_on_the_server(admin: AdminClient) -> None:
    await admin.login(ROOT_NAME, ROOT_PASSWORD)
    old_id = admin.cookie()
    page = await admin.post("/admin/logout")
    assert page.status == 303 and page.location == "/admin/login"
    assert any("fingerplat_admin=\"\"" in c or "fingerplat_admin=;" in c
               for c in page.set_cookie)
    # Replaying the old cookie does not bring the session back.
    admin.jar.update_cookies({"fingerplat_admin": old_id})
    assert (await admin.get("/admin/tenants", follow=False)).status == 303


async def test_post_without_csrf_token_is_refused(
    admin: AdminClient, web_server: RunningWeb
) -> None:
    await admin.login(ROOT_NAME, ROOT_PASSWORD)
    page = await admin.post("/admin/tenants/default/users", {"username": "mallory"}, csrf=None)
    assert page.status == 403
    assert "Form refused" in page.text and "nothing was changed" in page.text
    page = await admin.post("/admin/tenants/default/users", {"username": "mallory"},
                            csrf="forged-token")
    assert page.status == 403
    tenant = await web_server.service.public.resolve_tenant(None)
    assert await web_server.service.public.public_user(tenant, "mallory") is None
    # The same form with the page's token works.
    await admin.get("/admin/tenants/default/new-user")
    page = await admin.post("/admin/tenants/default/users", {"username": "mallory"})
    assert page.status == 303


async def test_login_form_needs_its_csrf_token(admin: AdminClient) -> None:
    await admin.get("/admin/login")
    page = await admin.post("/admin/login", {"name": ROOT_NAME, "password": ROOT_PASSWORD},
                            csrf=None)
    assert page.status == 403
    assert (await admin.get("/admin/tenants", follow=False)).status == 303


async def test_post_after_session_expired_changes_nothing(admin: AdminClient) -> None:
    page = await admin.post("/admin/tenants", {"slug": "ghost"}, csrf="x")
    assert page.status == 403
    assert "Log in again" in page.text


async def test_secure_flag_when_serving_https(service: FingerplatService) -> None:
    """``secure=True`` (the listener has TLS) marks the cookie Secure."""
    root = web.Application()
    root.add_subapp("/admin/", build_admin_app(service, secure=True, metrics=Metrics()))
    runner = web.AppRunner(root)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    client = AdminClient(f"http://127.0.0.1:{port}")
    try:
        page = await client.get("/admin/login")
        assert "Secure" in page.set_cookie[0] and "HttpOnly" in page.set_cookie[0]
    finally:
        await client.close()
        await runner.cleanup()


async def test_unknown_admin_page_is_a_404_page(admin: AdminClient) -> None:
    await admin.login(ROOT_NAME, ROOT_PASSWORD)
    page = await admin.get("/admin/no-such-page")
    assert page.status == 404
    assert "There is no such page." in page.text


async def test_admin_requests_are_counted_in_metrics(
    admin: AdminClient, web_server: RunningWeb
) -> None:
    await admin.login(ROOT_NAME, ROOT_PASSWORD)
    await admin.get("/admin/no-such-page")
    async with admin.session.get(web_server.url + "/metrics") as r:
        lines = (await r.text()).splitlines()
    requests = [x for x in lines if x.startswith('fingerplat_requests_total{adapter="admin"}')]
    assert requests and float(requests[0].split()[-1]) >= 4
    errors = [x for x in lines if x.startswith('fingerplat_errors_total{adapter="admin"')]
    assert errors == ['fingerplat_errors_total{adapter="admin",kind="404"} 1.0']


async def test_removing_an_admin_elsewhere_ends_their_session(
    admin: AdminClient, web_server: RunningWeb, operator: Context
) -> None:
    """Removed with the CLI (another channel): the next page asks to log in again."""
    await web_server.service.credentials.add_admin(operator, "temp", "temp-password")
    await admin.login("temp", "temp-password")
    assert (await admin.get("/admin/tenants", follow=False)).status == 200
    await web_server.service.credentials.remove_admin(operator, "temp")
    page = await admin.get("/admin/tenants", follow=False)
    assert page.status == 303 and page.location.startswith("/admin/login")
    # An account re-created under the same name is a new account: the session of
    # the old one does not carry over to it.
    await web_server.service.credentials.add_admin(operator, "temp", "temp-password")
    await admin.login("temp", "temp-password")
    await web_server.service.credentials.remove_admin(operator, "temp")
    await web_server.service.credentials.add_admin(operator, "temp", "other-password")
    assert (await admin.get("/admin/tenants", follow=False)).status == 303
