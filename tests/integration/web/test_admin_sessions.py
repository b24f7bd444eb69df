"""Admin sessions live in the database: shared by servers, hashed, expiring, flood-proof.

Each "server" here is a separate web listener over its own service object on
the same database, as two workers or two nodes are: nothing is shared between
them but the database. Real processes (workers, a restart) are in
tests/e2e/test_serve_sessions.py.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from fingerplat.adapters.web.server import WebServer, start_web_server
from fingerplat.config import WebConfig
from fingerplat.domain.model import Context
from fingerplat.metrics import Metrics
from fingerplat.repository.engine import create_engine
from fingerplat.repository.schema import web_sessions
from fingerplat.service import FingerplatService
from tests.integration.web.admin_client import ROOT_NAME, ROOT_PASSWORD, AdminClient, text_of


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now




@pytest.fixture
async def servers(database_url: str) -> AsyncIterator[Callable]:
    """Start web listeners, each over its own engine and service on the one database."""
    started: list[tuple[WebServer, object]] = []

    async def start(clock: Clock | None = None) -> tuple[str, FingerplatService]:
        engine = create_engine(database_url)
        service = FingerplatService(engine, clock=clock) if clock else FingerplatService(engine)
        config = WebConfig.model_validate({"listen": ["127.0.0.1:0"]})
        server = await start_web_server(service, config, metrics=Metrics())
        started.append((server, engine))
        return server.url, service

    yield start
    for server, engine in started:
        await server.drain(5)
        await engine.dispose()  # type: ignore[attr-defined]


async def _rows(service: FingerplatService) -> list[dict]:
    async with service.engine.connect() as conn:
        return [dict(r) for r in (await conn.execute(select(web_sessions))).mappings()]


async def test_a_login_on_one_server_is_valid_on_the_other(
    servers: Callable, service: FingerplatService, operator: Context
) -> None:
    await service.credentials.add_admin(operator, ROOT_NAME, ROOT_PASSWORD)
    url_a, _ = await servers()
    url_b, _ = await servers()
    client = AdminClient(url_a)
    try:
        assert (await client.login(ROOT_NAME, ROOT_PASSWORD)).status == 200
        token = client.cookie()
        other = AdminClient(url_b)
        try:
            other.jar.update_cookies({"fingerplat_admin": token})
            page = await other.get("/admin/tenants", follow=False)
            assert page.status == 200 and "admin:root" in page.text
            # A form of server A's page posts through server B (same CSRF secret).
            await client.get("/admin/tenants/default/new-user")
            other.csrf = client.csrf
            page = await other.post("/admin/tenants/default/users", {"username": "zed"})
            assert page.status == 303
            # ...and its flash message shows on server A.
            page = await client.get("/admin/tenants/default/users")
            assert "zed" in text_of(page.text)
            # Logging out on B ends the session on A.
            await other.post("/admin/logout")
            assert (await client.get("/admin/tenants", follow=False)).status == 303
        finally:
            await other.close()
    finally:
        await client.close()


async def test_only_the_hash_of_the_cookie_is_stored(
    servers: Callable, service: FingerplatService, operator: Context
) -> None:
    await service.credentials.add_admin(operator, ROOT_NAME, ROOT_PASSWORD)
    url, _ = await servers()
    client = AdminClient(url)
    try:
        await client.login(ROOT_NAME, ROOT_PASSWORD)
        token = client.cookie()
        assert token
        rows = await _rows(service)
        assert len(rows) == 1
        assert rows[0]["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
        assert token not in repr(rows)
        assert rows[0]["kind"] == "admin" and rows[0]["csrf_secret"] == client.csrf
    finally:
        await client.close()


async def test_a_created_token_secret_is_stored_only_sealed(
    servers: Callable, service: FingerplatService, operator: Context
) -> None:
    """The secret waits for the next page in the session, unreadable without the cookie."""
    await service.credentials.add_admin(operator, ROOT_NAME, ROOT_PASSWORD)
    url, _ = await servers()
    client = AdminClient(url)
    try:
        await client.login(ROOT_NAME, ROOT_PASSWORD)
        await client.get("/admin/tenants/default/tokens")
        page = await client.post("/admin/tenants/default/tokens", {"scope": "tenant"})
        assert page.status == 303
        rows = await _rows(service)
        assert rows[0]["data"] and "sealed" in rows[0]["data"]
        page = await client.get(page.location or "")
        secret = next(w for w in text_of(page.text).split() if w.startswith("fp_"))
        assert secret.split("_", 2)[2] not in repr(rows)
        # Shown once: the next page no longer has it, and the row forgot it.
        assert "fp_" not in text_of((await client.get("/admin/tenants/default/tokens")).text)
        assert "sealed" not in ((await _rows(service))[0]["data"] or {})
    finally:
        await client.close()


async def test_sessions_expire_when_idle_and_absolutely(
    servers: Callable, service: FingerplatService, operator: Context
) -> None:
    await service.credentials.add_admin(operator, ROOT_NAME, ROOT_PASSWORD)
    clock = Clock()
    url, _ = await servers(clock)
    client = AdminClient(url)
    try:
        await client.login(ROOT_NAME, ROOT_PASSWORD)
        for _ in range(11):  # active every 61 minutes: the idle limit never strikes...
            clock.now += timedelta(minutes=61)
            assert (await client.get("/admin/tenants", follow=False)).status == 200
        clock.now += timedelta(minutes=61)  # ...but 12 hours after login it is over
        assert (await client.get("/admin/tenants", follow=False)).status == 303
        await client.login(ROOT_NAME, ROOT_PASSWORD)
        clock.now += timedelta(hours=2, minutes=1)  # idle over two hours
        assert (await client.get("/admin/tenants", follow=False)).status == 303
    finally:
        await client.close()


async def test_expired_sessions_are_purged(
    servers: Callable, service: FingerplatService, operator: Context
) -> None:
    await service.credentials.add_admin(operator, ROOT_NAME, ROOT_PASSWORD)
    clock = Clock()
    url, clocked = await servers(clock)
    clients = [AdminClient(url) for _ in range(3)]
    try:
        for c in clients:
            await c.login(ROOT_NAME, ROOT_PASSWORD)
        assert len(await _rows(service)) == 3
        clock.now += timedelta(hours=13)
        # Any login deletes expired sessions (in bounded batches).
        await clients[0].login(ROOT_NAME, ROOT_PASSWORD)
        assert len(await _rows(service)) == 1
        clock.now += timedelta(hours=13)
        assert await clocked.web_sessions.purge_web_sessions() == 1
        assert await _rows(service) == []
    finally:
        for c in clients:
            await c.close()


async def test_removing_an_admin_deletes_their_sessions(
    servers: Callable, service: FingerplatService, operator: Context
) -> None:
    await service.credentials.add_admin(operator, "temp", "temp-password")
    url, _ = await servers()
    client = AdminClient(url)
    try:
        await client.login("temp", "temp-password")
        assert len(await _rows(service)) == 1
        await service.credentials.remove_admin(operator, "temp")
        assert await _rows(service) == []  # the foreign key's cascade
        assert (await client.get("/admin/tenants", follow=False)).status == 303
    finally:
        await client.close()


async def _flood_login_page(url: str, visits: int) -> int:
    """GET /admin/login ``visits`` times over one keep-alive connection; how many got 200."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    request = f"GET /admin/login HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
    ok = 0
    try:
        for _ in range(visits):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:"))
            await reader.readexactly(length)
            ok += head.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()
    return ok


async def test_a_flood_of_login_page_visits_keeps_no_state(
    servers: Callable, service: FingerplatService, operator: Context
) -> None:
    """10,000 anonymous visits push out neither an open login form nor a session."""
    await service.credentials.add_admin(operator, ROOT_NAME, ROOT_PASSWORD)
    await service.credentials.add_admin(operator, "second", "second-password")
    url, _ = await servers()
    logged_in, about_to = AdminClient(url), AdminClient(url)
    try:
        await logged_in.login("second", "second-password")
        await about_to.get("/admin/login")  # the form is open in a browser tab...
        assert await _flood_login_page(url, 10_500) == 10_500
        async with service.engine.connect() as conn:
            count = (await conn.execute(select(func.count()).select_from(web_sessions)))
            assert count.scalar_one() == 1  # the flood stored nothing
        # ...and is still accepted after the flood.
        page = await about_to.post("/admin/login", {"name": ROOT_NAME, "password": ROOT_PASSWORD})
        assert page.status == 303, text_of(page.text)
        assert (await about_to.get("/admin/tenants", follow=False)).status == 200
        assert (await logged_in.get("/admin/tenants", follow=False)).status == 200
    finally:
        await logged_in.close()
        await about_to.close()


async def test_a_login_form_from_another_browser_is_refused(
    servers: Callable, service: FingerplatService, operator: Context
) -> None:
    """The form token is bound to the visitor's own cookie: a copied token is useless."""
    await service.credentials.add_admin(operator, ROOT_NAME, ROOT_PASSWORD)
    url, _ = await servers()
    mine, attacker = AdminClient(url), AdminClient(url)
    try:
        await attacker.get("/admin/login")
        await mine.get("/admin/login")
        page = await mine.post("/admin/login", {"name": ROOT_NAME, "password": ROOT_PASSWORD},
                               csrf=attacker.csrf)
        assert page.status == 403 and "Form refused" in page.text
        # The same form with its own token logs in, on another node as well.
        url_b, _ = await servers()
        other = AdminClient(url_b)
        try:
            other.jar.update_cookies({"fingerplat_admin_login": mine.cookie(
                "fingerplat_admin_login")})
            page = await other.post("/admin/login", {"name": ROOT_NAME,
                                                     "password": ROOT_PASSWORD},
                                    csrf=mine.csrf)
            assert page.status == 303
        finally:
            await other.close()
    finally:
        await mine.close()
        await attacker.close()
