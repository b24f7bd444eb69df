"""Pseudo-users (issue 16): names answered by code, over real finger and web sockets.

Both databases, with and without the read cache ``serve`` enables: the
built-in kinds, names reserved in both directions, never listed, a kind that
raises or hangs answered with one short line while the server keeps serving,
control characters neutralised, and a ``recent`` answer that follows a
status change at once.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from fingerplat.adapters.finger.server import FingerServer, start_finger_server
from fingerplat.adapters.web.server import start_web_server
from fingerplat.config import FingerConfig, WebConfig
from fingerplat.domain.errors import Conflict, InvalidInput, NotFound, PermissionDenied
from fingerplat.domain.imports import ImportRecord
from fingerplat.domain.model import Channel, Context, Principal, Role
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService, pseudo_kinds
from fingerplat.service.pseudo_kinds import BUILTIN, Kind, KindRegistry, PseudoQuery
from tests.support import finger_client

TIMEOUT = 10.0
FAST = {"rate_limit": 100_000, "max_connections": 1000, "idle_timeout": 5}


def _raises(query: PseudoQuery) -> str:
    raise RuntimeError("the plugin broke")


async def _hangs(query: PseudoQuery) -> str:
    await asyncio.sleep(3600)
    return "never"


def _blocks(query: PseudoQuery) -> str:
    time.sleep(3)  # a plain function that hangs: runs on the plugin pool, not the loop
    return "too late"


def _escapes(query: PseudoQuery) -> list[str]:
    return ["\x1b[31mred\x1b[0m and a bell\x07", f"tenant {query.tenant_slug}\r\ninjected"]


KINDS = {
    **BUILTIN,
    "raises": Kind("raises", _raises),
    "hangs": Kind("hangs", _hangs),
    "blocks": Kind("blocks", _blocks),
    "escapes": Kind("escapes", _escapes),
}


@pytest.fixture(params=["no read cache", "read cache"])
async def svc(service: FingerplatService, request: pytest.FixtureRequest,
              monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[FingerplatService]:
    service.pseudo_users.pseudo_kinds = KindRegistry(KINDS)
    monkeypatch.setattr(pseudo_kinds, "ANSWER_TIMEOUT", 0.5)
    if request.param == "read cache":
        service.enable_read_cache()
    yield service
    service.disable_read_cache()


@pytest.fixture
async def finger_server(svc: FingerplatService) -> AsyncIterator[FingerServer]:
    server = await start_finger_server(svc, "127.0.0.1", 0, tenant=None,
                                       settings=FingerConfig(**FAST), metrics=Metrics())
    yield server
    await server.close()
    await server.drain(1)


async def finger(server: FingerServer, query: str) -> str:
    answer = await finger_client.finger(server, query, timeout=TIMEOUT)
    assert answer.endswith("\r\n")
    return answer


async def test_builtin_kinds_answer_finger(svc: FingerplatService, operator: Context,
                                           finger_server: FingerServer) -> None:
    await svc.users.add_user(operator, None, "alice", full_name="Alice Liddell")
    await svc.users.set_status(operator, None, "alice", "reading")
    for name, kind in (("help", "help"), ("recent", "recent"), ("now", "time")):
        await svc.pseudo_users.add_pseudo_user(operator, None, name, kind)

    helped = await finger(finger_server, "help")
    assert "finger USER@default" in helped
    assert "No such user" not in helped

    recent = await finger(finger_server, "recent")
    assert "Recent status changes" in recent
    assert "alice" in recent and "reading" in recent

    now = await finger(finger_server, "now")
    assert now.startswith("It is ") and "(UTC)" in now

    # Not a user: not in the user list, and /W works too.
    listing = await finger(finger_server, "")
    assert "alice" in listing
    assert "help" not in listing and "recent" not in listing and "now" not in listing
    assert "Recent status changes" in await finger(finger_server, "/W recent")


async def test_recent_follows_a_status_change_at_once(svc: FingerplatService, operator: Context,
                                                      finger_server: FingerServer) -> None:
    await svc.users.add_user(operator, None, "alice")
    await svc.users.add_user(operator, None, "bob")
    await svc.pseudo_users.add_pseudo_user(operator, None, "recent", "recent")
    await svc.users.set_status(operator, None, "alice", "first")
    first = await finger(finger_server, "recent")
    assert "first" in first and "bob" not in first
    assert await finger(finger_server, "recent") == first  # kept (with the cache), same bytes

    await svc.users.set_status(operator, None, "bob", "second")
    second = await finger(finger_server, "recent")
    assert "second" in second
    assert second.index("bob") < second.index("alice")  # newest first

    await svc.users.edit_user(operator, None, "bob", hidden=True)
    assert "bob" not in await finger(finger_server, "recent")


async def test_names_are_reserved_both_ways(svc: FingerplatService, operator: Context) -> None:
    await svc.users.add_user(operator, None, "alice")
    await svc.users.add_user(operator, None, "ghost", hidden=True)
    with pytest.raises(Conflict):
        await svc.pseudo_users.add_pseudo_user(operator, None, "alice", "help")
    with pytest.raises(Conflict):  # a hidden user's name is taken too
        await svc.pseudo_users.add_pseudo_user(operator, None, "Ghost", "help")
    await svc.pseudo_users.add_pseudo_user(operator, None, "help", "help")
    with pytest.raises(Conflict):
        await svc.pseudo_users.add_pseudo_user(operator, None, "help", "time")
    with pytest.raises(Conflict):
        await svc.users.add_user(operator, None, "HELP")
    # The importer refuses the line and takes the rest.
    report = await svc.imports.import_records(operator, None, [
        ImportRecord(line=1, username="help", status="hi"),
        ImportRecord(line=2, username="carol", status="hello"),
    ])
    assert [r.line for r in report.rejected] == [1]
    assert "pseudo-user" in report.rejected[0].reason
    assert (await svc.users.get_user(operator, None, "carol")).status == "hello"
    # Another tenant is another namespace.
    await svc.tenants.create_tenant(operator, "acme")
    await svc.users.add_user(operator, "acme", "help")
    # Removed, the name is free again.
    await svc.pseudo_users.remove_pseudo_user(operator, None, "help")
    await svc.users.add_user(operator, None, "help")
    with pytest.raises(NotFound):
        await svc.pseudo_users.remove_pseudo_user(operator, None, "help")


async def test_bad_input_and_permissions_change_nothing(svc: FingerplatService,
                                                       operator: Context) -> None:
    with pytest.raises(InvalidInput, match="unknown pseudo-user kind"):
        await svc.pseudo_users.add_pseudo_user(operator, None, "x", "no-such-kind")
    with pytest.raises(InvalidInput, match="invalid username"):
        await svc.pseudo_users.add_pseudo_user(operator, None, "bad name!", "help")
    await svc.tenants.create_tenant(operator, "acme")
    acme = await svc.public.resolve_tenant("acme")
    acme_admin = Context(Principal(Role.TENANT_ADMIN, "token:1", tenant_id=acme.id), Channel.API)
    with pytest.raises(PermissionDenied):
        await svc.pseudo_users.add_pseudo_user(acme_admin, None, "help", "help")
    await svc.pseudo_users.add_pseudo_user(acme_admin, "acme", "help", "help")
    assert [p.name for p in await svc.pseudo_users.list_pseudo_users(operator, None)] == []
    assert [(p.name, p.kind) for p in await svc.pseudo_users.list_pseudo_users(
        operator, "acme")] == [
        ("help", "help")]
    events = await svc.audit.audit_log(operator, _query("acme"))
    assert ("pseudo.create", "ok") in [(e.action, e.outcome) for e in events]
    await svc.pseudo_users.remove_pseudo_user(acme_admin, "acme", "help")
    events = await svc.audit.audit_log(operator, _query("acme"))
    assert events[0].action == "pseudo.remove" and events[0].before == {"kind": "help"}


def _query(tenant: str):
    from fingerplat.domain.model import AuditQuery

    return AuditQuery(tenant=tenant, limit=10)


async def test_a_failing_kind_gets_a_short_answer_and_the_server_goes_on(
        svc: FingerplatService, operator: Context, finger_server: FingerServer) -> None:
    await svc.users.add_user(operator, None, "alice")
    for name in ("raises", "hangs", "blocks"):
        await svc.pseudo_users.add_pseudo_user(operator, None, name, name)
    assert (await finger(finger_server, "raises")).strip() == pseudo_kinds.FAILED
    assert (await finger(finger_server, "hangs")).strip() == pseudo_kinds.TIMED_OUT
    assert (await finger(finger_server, "blocks")).strip() == pseudo_kinds.TIMED_OUT
    # Several at once, while users are still answered.
    answers = await asyncio.gather(*(finger(finger_server, q)
                                     for q in ("hangs", "alice", "blocks", "alice")))
    assert "Login: alice" in answers[1] and "Login: alice" in answers[3]
    assert answers[0].strip() == answers[2].strip() == pseudo_kinds.TIMED_OUT


async def test_answers_are_neutralised(svc: FingerplatService, operator: Context,
                                       finger_server: FingerServer) -> None:
    await svc.pseudo_users.add_pseudo_user(operator, None, "escapes", "escapes")
    answer = await finger(finger_server, "escapes")
    assert "\x1b" not in answer and "\x07" not in answer
    assert "^[[31mred" in answer
    assert answer.count("\r\n") == 3  # the CRLF inside became its own line, nothing smuggled


async def test_a_kind_no_longer_installed(svc: FingerplatService, operator: Context,
                                          finger_server: FingerServer) -> None:
    await svc.pseudo_users.add_pseudo_user(operator, None, "gone", "escapes")
    svc.pseudo_users.pseudo_kinds = KindRegistry(BUILTIN)  # the package was uninstalled
    if svc.read_cache is not None:
        svc.read_cache.clear()
    assert (await finger(finger_server, "gone")).strip() == pseudo_kinds.UNKNOWN_KIND


async def test_web_page_of_a_pseudo_user(svc: FingerplatService, operator: Context) -> None:
    await svc.users.add_user(operator, None, "alice")
    await svc.users.set_status(operator, None, "alice", "<b>bold</b>")
    await svc.pseudo_users.add_pseudo_user(operator, None, "recent", "recent")
    await svc.pseudo_users.add_pseudo_user(operator, None, "escapes", "escapes")
    server = await start_web_server(svc, WebConfig(listen=["127.0.0.1:0"]), metrics=Metrics())
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
            async with http.get(f"{server.url}/~recent") as response:
                assert response.status == 200
                page = await response.text()
            assert "Recent status changes" in page
            assert "&lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold" not in page
            async with http.get(f"{server.url}/~escapes") as response:
                assert "\x1b" not in await response.text()
            async with http.get(f"{server.url}/~Recent", allow_redirects=False) as response:
                assert response.status == 301
                assert response.headers["Location"].endswith("/~recent")
            async with http.get(f"{server.url}/") as response:
                directory = await response.text()
            assert "~alice" in directory and "~recent" not in directory
            async with http.get(f"{server.url}/~nobody") as response:
                assert response.status == 404
    finally:
        await server.drain(5)
