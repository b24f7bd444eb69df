"""Authentication attacks against a real ``fingerplat serve`` (SPEC sections 11 and 12).

What tests/integration/web/test_auth_attacks.py shows in one process holds
for the real command: a token revoked with ``fingerplat token revoke`` stops a
setter session already open on ``serve``, and the login throttle is one for
every worker of ``serve --workers 2`` (it lives in the database).
"""

from __future__ import annotations

import asyncio
import re

import aiohttp

from fingerplat.domain.model import AuditQuery, Context, TokenScope
from fingerplat.service import FingerplatService
from tests.e2e.conftest import Fingerplat
from tests.support.polling import until

TIMEOUT = 10.0
CSRF_RE = re.compile(r'name="csrf_token" value="([^"]*)"')


async def ask(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, line: str) -> str:
    writer.write(line.encode() + b"\r\n")
    return (await asyncio.wait_for(reader.readline(), TIMEOUT)).decode().rstrip("\r\n")


async def test_token_revoke_reaches_an_open_setter_session(
    cli: Fingerplat, serve_factory, service: FingerplatService, operator: Context
) -> None:
    await service.users.add_user(operator, None, "victim")
    issued = await service.credentials.create_token(operator, TokenScope.TENANT)
    token, token_id = issued.secret, str(issued.token.id)
    server = await serve_factory(cli.env, "--finger", "", "--web", "",
                                 "--setter", "127.0.0.1:0")
    host, port = server.address("setter")
    reader, writer = await asyncio.open_connection(host, port)
    try:
        assert (await ask(reader, writer, f"AUTH {token}")).startswith("+OK authenticated")
        assert (await ask(reader, writer, "SET victim before")).startswith("+OK")
        cli("token", "revoke", token_id, ok=True)
        reply = await ask(reader, writer, "SET victim after")
        assert reply.startswith("-ERR token revoked"), reply
        assert (await ask(reader, writer, "SET victim again")).startswith(
            "-ERR not authenticated")
    finally:
        writer.close()
    shown = cli("user", "show", "victim", ok=True).stdout
    assert "before" in shown and "after" not in shown and "again" not in shown


async def _wrong_login(base: str) -> int:
    """One browser-like login attempt with a wrong password; the answer's status."""
    jar = aiohttp.CookieJar(unsafe=True)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(cookie_jar=jar, timeout=timeout) as session:
        async with session.get(base + "/admin/login") as r:
            found = CSRF_RE.search(await r.text())
        assert found, "the login form carries a CSRF token"
        form = {"name": "root", "password": "wrong-guess", "csrf_token": found.group(1)}
        async with session.post(base + "/admin/login", data=form,
                                allow_redirects=False) as r:
            return r.status


async def test_workers_share_one_login_throttle(
    cli: Fingerplat, serve_factory, service: FingerplatService, operator: Context
) -> None:
    await service.credentials.add_admin(operator, "root", "correct-horse-battery")
    server = await serve_factory(cli.env, "--workers", "2", "--finger", "", "--setter", "",
                                 "--web", "127.0.0.1:0")
    host, port = server.address("web")
    statuses = await asyncio.gather(*(_wrong_login(f"http://{host}:{port}")
                                      for _ in range(40)))
    # Two processes, one counter: at most five guesses were checked, not ten.
    assert statuses.count(401) <= 5, statuses
    assert statuses.count(429) >= 30, statuses


async def test_an_anonymous_flood_is_summarised_by_the_running_server(
    cli: Fingerplat, serve_factory, service: FingerplatService, operator: Context
) -> None:
    await service.users.add_user(operator, None, "victim")
    server = await serve_factory(cli.env, "--finger", "", "--web", "",
                                 "--setter", "127.0.0.1:0")
    host, port = server.address("setter")

    async def one_client() -> None:
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for n in range(10):
                assert (await ask(reader, writer, f"SET victim owned {n}")).startswith(
                    "-ERR not authenticated")
        finally:
            writer.close()

    await asyncio.gather(*(one_client() for _ in range(10)))
    denied = cli("audit", "--all", "--action", "status.set", ok=True).stdout
    assert denied.count("denied") == 3, denied
    # serve's sweeper writes the count without anyone calling it (every 10 s):
    # watched from this process, then shown by the command.
    async def summarised() -> bool:
        return bool(await service.audit.audit_log(
            operator, AuditQuery(action="auth.failures", limit=5), all_tenants=True))

    await until(summarised, "serve wrote the auth.failures row", timeout=40, interval=0.2)
    shown = cli("audit", "--all", "--action", "auth.failures", ok=True).stdout
    assert "97 more failed or refused attempts from 127.0.0.1" in shown, shown
