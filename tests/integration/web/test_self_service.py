"""The self-service page over the real web server, on both databases.

A user with a password signs in at /login (tenant by Host or /t/<slug>/),
changes their own status, plan and allowed profile fields at /me, and
nothing else: forms edited by hand to name anyone else are refused and
audited.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fingerplat.domain.model import AuditEvent, AuditQuery, Context
from fingerplat.service import FingerplatService
from tests.integration.web.admin_client import AdminClient, text_of
from tests.integration.web.conftest import RunningWeb
from tests.integration.web.test_attacks_input import multipart

PASSWORD = "alice-long-password"


@pytest.fixture
async def people(service: FingerplatService, operator: Context) -> FingerplatService:
    await service.tenants.create_tenant(
        operator, "acme", name="Acme Corp", domains=["acme.example"])
    await service.users.add_user(operator, None, "alice", full_name="Alice Liddell", office="B12")
    await service.users.add_user(operator, None, "bob", full_name="Bob Builder")
    await service.users.add_user(operator, "acme", "carol", full_name="Carol Acme")
    await service.users.set_status(operator, None, "bob", "building")
    await service.users.set_status(operator, "acme", "carol", "at the anvil factory")
    await service.self_service.set_user_password(operator, None, "alice", PASSWORD)
    await service.self_service.set_user_password(operator, "acme", "carol", "carol-long-password")
    return service


@pytest.fixture
async def browser(web_server: RunningWeb, people: FingerplatService
                  ) -> AsyncIterator[AdminClient]:
    client = AdminClient(web_server.url)
    yield client
    await client.close()


async def sign_in(client: AdminClient, name: str, password: str, base: str = "") -> int:
    await client.get(f"{base}/login")
    page = await client.post(f"{base}/login", {"name": name, "password": password})
    return page.status


async def events(service: FingerplatService, operator: Context, action: str) -> list[AuditEvent]:
    found = await service.audit.audit_log(operator, AuditQuery(action=action, limit=100),
                                    all_tenants=True)
    return [e for e in found if e.channel == "web"]


def me_form(client: AdminClient, **fields: str) -> dict[str, str]:
    return {"tenant": "default", "user": "alice", **fields}


async def test_a_user_signs_in_and_changes_their_status_plan_and_profile(
    browser: AdminClient, people: FingerplatService, operator: Context
) -> None:
    page = await browser.get("/me", follow=False)
    assert page.status == 303 and page.location == "/login"
    login = await browser.get("/login")
    assert login.status == 200 and "Sign in" in login.text
    assert login.headers["Cache-Control"] == "no-store"
    assert browser.cookie("fingerplat_me_login") and not [
        c for c in browser.jar if c.key.startswith("fingerplat_me_") and c.key[-1].isdigit()]
    page = await browser.post("/login", {"name": "alice", "password": PASSWORD})
    assert page.status == 303 and page.location == "/me"
    assert any("HttpOnly" in c and "SameSite=Strict" in c for c in page.set_cookie)

    page = await browser.get("/me")
    text = text_of(page.text)
    assert page.status == 200 and "Alice Liddell" in text and "alice@default" in text
    assert "No status set." in text and 'value="B12"' in page.text

    page = await browser.post("/me/status", me_form(browser, status="reading", action="set"))
    assert page.status == 303 and page.location == "/me"
    page = await browser.get("/me")
    assert "Status set." in page.text and 'id="current-status">reading<' in page.text
    await browser.post("/me/plan", me_form(browser, plan="Line one\r\nLine <two>"))
    await browser.post("/me/profile", me_form(browser, office="C3", phone="+1 555"))
    user = await people.public.public_user(await people.public.resolve_tenant(None), "alice")
    assert user is not None
    assert (user.status, user.plan, user.office, user.phone) == (
        "reading", "Line one\nLine <two>", "C3", "+1 555")
    page = await browser.get("/me")
    assert "Line &lt;two&gt;" in page.text  # escaped, never markup
    # Bad input is the domain's refusal, shown on the page; nothing changes.
    page = await browser.post("/me/status", me_form(browser, status="x" * 300, action="set"),
                              follow=True)
    assert page.status == 200 and "280" in text_of(page.text)
    await browser.post("/me/status", me_form(browser, action="clear"))
    user = await people.public.public_user(await people.public.resolve_tenant(None), "alice")
    assert user is not None and user.status is None

    changes = [(e.action, e.actor, e.target) for e in await events(people, operator, "status.set")]
    assert changes == [("status.set", "user:alice", "alice@default")]
    for action in ("status.clear", "plan.set", "user.update"):
        assert [e.actor for e in await events(people, operator, action)] == ["user:alice"]
    logins = await events(people, operator, "auth.login")
    assert [(e.actor, e.outcome, e.target) for e in logins] == [
        ("user:alice", "ok", "alice@default")]

    # Sign out: the session is gone on the server.
    token = next(c.value for c in browser.jar if c.key.startswith("fingerplat_me_")
                 and c.key[-1].isdigit())
    page = await browser.post("/logout")
    assert page.status == 303 and page.location == "/login"
    browser.jar.update_cookies({next(c.key for c in browser.jar
                                     if c.key.startswith("fingerplat_me_")): token})
    assert (await browser.get("/me", follow=False)).status == 303


async def test_a_user_gives_their_status_an_expiry_on_their_page(
    browser: AdminClient, people: FingerplatService
) -> None:
    assert await sign_in(browser, "alice", PASSWORD) == 303
    assert "Until (optional)" in (await browser.get("/me")).text
    page = await browser.post("/me/status", me_form(browser, status="at lunch", action="set",
                                                    expires="45m"))
    assert page.status == 303 and page.location == "/me"
    page = await browser.get("/me")
    text = text_of(page.text)
    assert 'id="current-status">at lunch<' in page.text and "until" in text
    user = await people.public.public_user(await people.public.resolve_tenant(None), "alice")
    assert user is not None and user.status == "at lunch"
    assert user.status_expires_at is not None and user.status_set_at is not None
    assert 44 * 60 <= (user.status_expires_at - user.status_set_at).total_seconds() <= 46 * 60
    # A bad expiry is the domain's refusal, shown on the page; nothing changes.
    page = await browser.post("/me/status", me_form(browser, status="gone", action="set",
                                                    expires="soonish"), follow=True)
    assert page.status == 200 and "soonish" in text_of(page.text)
    user = await people.public.public_user(await people.public.resolve_tenant(None), "alice")
    assert user is not None and user.status == "at lunch"


async def test_wrong_or_missing_passwords_look_alike_and_are_audited(
    browser: AdminClient, people: FingerplatService, operator: Context
) -> None:
    for name, password in (("alice", "wrong-password"), ("bob", "any-password"),
                           ("nobody", "any-password")):
        await browser.get("/login")
        page = await browser.post("/login", {"name": name, "password": password})
        assert page.status == 401
        assert "Wrong user name or password." in text_of(page.text)
    denied = await events(people, operator, "auth.login")
    assert {e.target for e in denied} == {"alice@default", "bob@default", "nobody@default"}
    assert all(e.outcome == "denied" and e.actor == "anonymous" for e in denied)
    assert (await browser.get("/me", follow=False)).status == 303


async def test_a_hand_edited_form_cannot_change_anyone_else(
    browser: AdminClient, people: FingerplatService, operator: Context
) -> None:
    assert await sign_in(browser, "alice", PASSWORD) == 303
    await browser.get("/me")
    attempts = [
        ("/me/status", {"tenant": "default", "user": "bob", "status": "hacked"}),
        ("/me/status", {"tenant": "acme", "user": "carol", "status": "hacked"}),
        ("/me/status", {"tenant": "acme.example", "user": "alice", "status": "hacked"}),
        ("/me/plan", {"tenant": "default", "user": "bob", "plan": "hacked"}),
        ("/me/profile", {"tenant": "default", "user": "bob", "full_name": "Hacked"}),
        ("/me/profile", {"tenant": "ghost", "user": "nobody", "full_name": "Hacked"}),
        ("/me/status", {"status": "no names at all"}),
    ]
    for path, form in attempts:
        page = await browser.post(path, form)
        assert page.status == 403, (path, form)
    default = await people.public.resolve_tenant(None)
    acme = await people.public.resolve_tenant("acme")
    bob = await people.public.public_user(default, "bob")
    carol = await people.public.public_user(acme, "carol")
    assert bob is not None and (bob.status, bob.plan, bob.full_name) == (
        "building", "", "Bob Builder")
    assert carol is not None and carol.status == "at the anvil factory"
    alice = await people.public.public_user(default, "alice")
    assert alice is not None and alice.status is None
    refused = [e for a in ("status.set", "plan.set", "user.update")
               for e in await events(people, operator, a)]
    assert len(refused) == len(attempts)
    assert all(e.outcome == "denied" and e.actor == "user:alice" for e in refused)
    assert {e.target for e in refused} >= {"bob@default", "carol@acme", "alice@acme.example",
                                           "nobody@ghost"}


async def test_only_the_fields_the_tenant_allows_are_editable(
    browser: AdminClient, people: FingerplatService, operator: Context
) -> None:
    assert await people.self_service.set_self_edit_fields(operator, None, "phone") == ("phone",)
    await sign_in(browser, "alice", PASSWORD)
    page = await browser.get("/me")
    assert 'name="phone"' in page.text and 'name="full_name"' not in page.text
    assert "readonly" in page.text
    page = await browser.post("/me/profile", me_form(browser, full_name="Someone Else",
                                                     phone="42"))
    assert page.status == 403
    user = await people.public.public_user(await people.public.resolve_tenant(None), "alice")
    assert user is not None and (user.full_name, user.phone) == ("Alice Liddell", "")
    assert (await browser.post("/me/profile", me_form(browser, phone="42"))).status == 303
    user = await people.public.public_user(await people.public.resolve_tenant(None), "alice")
    assert user is not None and user.phone == "42"
    denied = [e for e in await events(people, operator, "user.update") if e.outcome == "denied"]
    assert len(denied) == 1 and "full name" in denied[0].detail


async def test_forms_need_their_csrf_token(
    browser: AdminClient, people: FingerplatService
) -> None:
    await browser.get("/login")
    page = await browser.post("/login", {"name": "alice", "password": PASSWORD}, csrf=None)
    assert page.status == 403 and "Form refused" in page.text
    assert await sign_in(browser, "alice", PASSWORD) == 303
    await browser.get("/me")
    for csrf in (None, "forged"):
        page = await browser.post("/me/status", me_form(browser, status="x"), csrf=csrf)
        assert page.status == 403 and "Form refused" in page.text
    user = await people.public.public_user(await people.public.resolve_tenant(None), "alice")
    assert user is not None and user.status is None


async def test_refused_forms_are_audited_as_the_admin_uis_are(
    browser: AdminClient, web_server: RunningWeb, people: FingerplatService, operator: Context
) -> None:
    # The login form without its token: nobody is signed in yet, so anonymous.
    await browser.get("/login")
    assert (await browser.post("/login", {"name": "alice", "password": PASSWORD},
                               csrf=None)).status == 403
    [login] = await events(people, operator, "web.csrf")
    assert (login.actor, login.outcome, login.target) == ("anonymous", "denied", "POST /login")
    # A signed-in user's form without, or with a forged, token: audited as the user.
    assert await sign_in(browser, "alice", PASSWORD) == 303
    await browser.get("/me")
    for csrf in (None, "forged"):
        assert (await browser.post("/me/status", me_form(browser, status="x"),
                                   csrf=csrf)).status == 403
    refused = [(e.actor, e.outcome, e.target) for e in await events(people, operator, "web.csrf")
               if e.actor != "anonymous"]
    assert refused == [("user:alice", "denied", "POST /me/status")] * 2
    # A form posted with no session at all (a forged cross-site post, say), by path too.
    stranger = AdminClient(web_server.url)
    try:
        page = await stranger.post("/t/default/me/status", me_form(stranger, status="x"),
                                   csrf="x")
        assert page.status == 403 and "Signed out" in page.text
    finally:
        await stranger.close()
    [form] = await events(people, operator, "web.form")
    assert (form.actor, form.outcome, form.target) == \
        ("anonymous", "denied", "POST /t/default/me/status")
    user = await people.public.public_user(await people.public.resolve_tenant(None), "alice")
    assert user is not None and user.status is None


async def test_repeated_failures_throttle_the_login(browser: AdminClient) -> None:
    for _ in range(5):
        assert await sign_in(browser, "alice", "wrong-password") == 401
    page = await browser.post("/login", {"name": "alice", "password": PASSWORD})
    assert page.status == 429 and "Too many failed logins" in text_of(page.text)


async def test_tenants_by_path_and_by_host_have_separate_sessions(
    browser: AdminClient, web_server: RunningWeb, people: FingerplatService
) -> None:
    # carol is not a user of the default tenant...
    assert await sign_in(browser, "carol", "carol-long-password") == 401
    # ...but of acme, by path prefix.
    assert await sign_in(browser, "carol", "carol-long-password", "/t/acme") == 303
    page = await browser.get("/t/acme/me")
    assert page.status == 200 and "carol@acme" in text_of(page.text)
    assert 'action="/t/acme/me/status"' in page.text
    # The acme session is no session of the default tenant.
    assert (await browser.get("/me", follow=False)).status == 303
    # By Host: the acme domain's /login and /me.
    async with browser.session.get(web_server.url + "/me", headers={"Host": "acme.example"},
                                   allow_redirects=False) as r:
        assert r.status == 200 and "carol@acme" in text_of(await r.text())


async def test_a_new_password_ends_open_sessions(
    browser: AdminClient, people: FingerplatService, operator: Context
) -> None:
    await sign_in(browser, "alice", PASSWORD)
    assert (await browser.get("/me", follow=False)).status == 200
    await people.self_service.set_user_password(operator, None, "alice", "another-long-password")
    assert (await browser.get("/me", follow=False)).status == 303
    assert await sign_in(browser, "alice", PASSWORD) == 401
    assert await sign_in(browser, "alice", "another-long-password") == 303
    # Removing the user ends the session too.
    await people.users.remove_user(operator, None, "alice")
    assert (await browser.get("/me", follow=False)).status == 303


async def test_an_admin_session_is_not_a_user_session(
    browser: AdminClient, people: FingerplatService, operator: Context
) -> None:
    """The two kinds never stand in for each other, whatever cookie carries them."""
    await people.credentials.add_admin(operator, "root", "correct-horse-battery")
    await browser.login("root", "correct-horse-battery")
    admin_token = browser.cookie()
    tenant = await people.public.resolve_tenant(None)
    browser.jar.clear()
    browser.jar.update_cookies({f"fingerplat_me_{tenant.id}": admin_token})
    assert (await browser.get("/me", follow=False)).status == 303
    browser.jar.clear()
    await sign_in(browser, "alice", PASSWORD)
    user_token = browser.cookie(f"fingerplat_me_{tenant.id}")
    browser.jar.clear()
    browser.jar.update_cookies({"fingerplat_admin": user_token})
    assert (await browser.get("/admin/tenants", follow=False)).status == 303


async def test_a_malformed_form_is_a_400_and_changes_nothing(
    browser: AdminClient, people: FingerplatService
) -> None:
    await sign_in(browser, "alice", PASSWORD)
    body, headers = multipart(b"Content-Disposition: form-data\r\n\r\nno name")
    for path in ("/login", "/me/status"):
        async with browser.session.post(browser.base + path, data=body, headers=headers) as r:
            assert r.status == 400 and "Form cannot be read" in await r.text()
    user = await people.public.public_user(await people.public.resolve_tenant(None), "alice")
    assert user is not None and user.status is None
