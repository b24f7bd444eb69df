"""What a hostile client tries against authentication, and what it gets (SPEC section 11).

Each test is one attack, made over real sockets against the real listeners
(admin login, JSON API, XML-RPC, setter) on SQLite and PostgreSQL, and
asserts what the attacker and the rightful users see. Read as a list, the
test names are what the platform withstands:

- parallel wrong passwords reach argon2 about five times, not forty;
- such a flood never locks the rightful admin out from another address;
- a token revoked, a user or tenant removed, stops an open setter session at
  its next command (a user added again under the same name is someone else);
- failed authentications and anonymous refusals leave a trace, but one client
  adds only a handful of audit rows and then one ``auth.failures`` summary;
- the same address is slowed down and then refused on every channel (429
  with ``Retry-After``, ``-ERR``, an XML-RPC fault);
- refusals made before any credentials are checked (no token, a form without
  its CSRF token, a tenant admin on platform pages) are audited too.
"""

from __future__ import annotations

import asyncio
import base64
import xmlrpc.client
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest

from fingerplat.adapters.setter.server import SetterServer, start_setter_server
from fingerplat.config import SetterConfig
from fingerplat.domain.model import AuditEvent, AuditQuery, Context
from fingerplat.domain.throttle import ThrottlePolicy
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService, credential_crypto
from tests.integration.web.admin_client import (
    ROOT_NAME,
    ROOT_PASSWORD,
    AdminClient,
    admin_client,
    text_of,
)
from tests.integration.web.conftest import RunningWeb, Seeded, bearer

TIMEOUT = 10.0
OTHER_ADDRESS = "127.0.0.2"  # loopback too: a second client address on this machine


# -- helpers -------------------------------------------------------------------


async def audit(service: FingerplatService, operator: Context, **query: Any) -> list[AuditEvent]:
    return list(await service.audit.audit_log(operator, AuditQuery(limit=1000, **query),
                                        all_tenants=True))


async def denied_from(service: FingerplatService, operator: Context,
                      address: str) -> list[AuditEvent]:
    return [e for e in await audit(service, operator)
            if e.outcome == "denied" and e.remote_addr == address]


async def summaries(service: FingerplatService, operator: Context) -> list[AuditEvent]:
    """The ``auth.failures`` rows once ``serve``'s sweeper has run (it runs every 10 s)."""
    await service.throttle.flush_auth_failures()
    return await audit(service, operator, action="auth.failures")


def client_from(base_url: str, address: str) -> AdminClient:
    """An admin client whose connections come from ``address``."""
    client = AdminClient(base_url)
    client.session = aiohttp.ClientSession(
        cookie_jar=client.jar, timeout=aiohttp.ClientTimeout(total=20),
        connector=aiohttp.TCPConnector(local_addr=(address, 0)),
    )
    return client


def token_id(secret: str) -> int:
    return int(secret.split("_", 2)[1])


class SetterClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def connect(cls, server: SetterServer, local: str | None = None) -> SetterClient:
        host, port = server.addresses[0].rsplit(":", 1)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(
            host, int(port), local_addr=(local, 0) if local else None), TIMEOUT)
        return cls(reader, writer)

    async def ask(self, line: str) -> str:
        self.writer.write(line.encode() + b"\r\n")
        reply = await asyncio.wait_for(self.reader.readline(), TIMEOUT)
        return reply.decode().rstrip("\r\n")

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def setter(service: FingerplatService) -> AsyncIterator[SetterServer]:
    server = await start_setter_server(service, "127.0.0.1", 0, settings=SetterConfig(),
                                       metrics=Metrics())
    yield server
    await server.close()
    await server.drain(1)


@pytest.fixture
async def admin(web_server: RunningWeb, operator: Context) -> AsyncIterator[AdminClient]:
    async with admin_client(web_server, operator) as client:
        yield client


@pytest.fixture
def argon2_checks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts every admin password check (argon2) the service makes."""
    calls: list[int] = []
    real = credential_crypto.password_matches

    def counting(password: str, stored: str | None) -> bool:
        calls.append(1)
        return real(password, stored)

    monkeypatch.setattr(credential_crypto, "password_matches", counting)
    return calls


async def status_of(service: FingerplatService, name: str, tenant: str | None = None
                    ) -> str | None:
    user = await service.public.public_user(await service.public.resolve_tenant(tenant), name)
    return None if user is None else user.status


async def until(predicate: Callable[[], Awaitable[bool]], attempts: int) -> int:
    """Call ``predicate`` up to ``attempts`` times; how many calls until it was true."""
    for n in range(1, attempts + 1):
        if await predicate():
            return n
    raise AssertionError(f"still false after {attempts} attempts")


# -- the admin login -------------------------------------------------------------


async def test_forty_parallel_wrong_passwords_reach_argon2_at_most_five_times(
    admin: AdminClient, web_server: RunningWeb, operator: Context, argon2_checks: list[int]
) -> None:
    clients = [AdminClient(web_server.url) for _ in range(40)]
    try:
        pages = await asyncio.gather(*(c.login(ROOT_NAME, "wrong-guess") for c in clients))
    finally:
        await asyncio.gather(*(c.close() for c in clients))
    statuses = sorted(p.status for p in pages)
    assert set(statuses) == {401, 429}, [text_of(p.text)[:300] for p in pages
                                         if p.status not in (401, 429)][:1]
    assert statuses.count(401) <= 5 and len(argon2_checks) <= 5
    assert all(0 < int(p.headers["Retry-After"]) <= 300 for p in pages if p.status == 429)
    # The same address, even with the right password, waits for the window to end...
    assert (await admin.login(ROOT_NAME, ROOT_PASSWORD)).status == 429
    # ...but the flood is no lock-out weapon: the admin elsewhere logs in at once.
    elsewhere = client_from(web_server.url, OTHER_ADDRESS)
    try:
        page = await elsewhere.login(ROOT_NAME, ROOT_PASSWORD)
        assert page.status == 200 and "Tenants" in page.text
    finally:
        await elsewhere.close()
    # 41 refusals from one address: three rows of their own, the rest in one summary.
    assert len(await denied_from(web_server.service, operator, "127.0.0.1")) == 3
    [summary] = await summaries(web_server.service, operator)
    assert (summary.remote_addr, summary.outcome, summary.channel) == \
        ("127.0.0.1", "denied", "web")
    assert summary.after["failures"] == 41 - 3
    assert summary.after["window_start"] < summary.after["window_end"]


async def test_guessing_many_admin_names_from_one_address_is_refused_too(
    admin: AdminClient, web_server: RunningWeb, argon2_checks: list[int]
) -> None:
    web_server.service.throttle.throttle_policy = ThrottlePolicy(delay_base=0.0)  # no slow replies
    statuses = [(await admin.login(f"name{n}", "guess")).status for n in range(24)]
    assert statuses[:20] == [401] * 20 and set(statuses[20:]) == {429}
    assert len(argon2_checks) == 20


# -- the setter ----------------------------------------------------------------


async def test_a_revoked_token_stops_an_open_setter_session(
    setter: SetterServer, service: FingerplatService, operator: Context, seeded: Seeded
) -> None:
    client = await SetterClient.connect(setter)
    assert (await client.ask(f"AUTH {seeded.default_admin_token}")).startswith("+OK")
    assert (await client.ask("SET bob before the revocation")).startswith("+OK")
    await service.credentials.revoke_token(operator, token_id(seeded.default_admin_token))
    reply = await client.ask("SET bob after the revocation")
    assert reply.startswith("-ERR token revoked since this session authenticated")
    assert await status_of(service, "bob") == "before the revocation"
    # The session lost its principal: it is anonymous from now on.
    assert (await client.ask("SET bob again")).startswith("-ERR not authenticated")
    assert await status_of(service, "bob") == "before the revocation"
    client.close()
    [event] = await audit(service, operator, action="auth.session")
    assert (event.outcome, event.channel) == ("denied", "setter")


async def test_a_user_removed_and_added_again_is_a_new_principal(
    setter: SetterServer, service: FingerplatService, operator: Context, seeded: Seeded
) -> None:
    client = await SetterClient.connect(setter)
    assert (await client.ask(f"AUTH {seeded.bob_token}")).startswith("+OK")
    await service.users.remove_user(operator, None, "bob")
    await service.users.add_user(operator, None, "bob")
    assert (await client.ask("SET bob I am the old bob")).startswith("-ERR")
    assert await status_of(service, "bob") is None
    client.close()


async def test_a_removed_tenant_stops_its_admins_open_setter_session(
    setter: SetterServer, service: FingerplatService, operator: Context, seeded: Seeded
) -> None:
    client = await SetterClient.connect(setter)
    assert (await client.ask(f"AUTH {seeded.acme_admin_token}")).startswith("+OK")
    assert (await client.ask("SET carol@acme still here")).startswith("+OK")
    await service.tenants.remove_tenant(operator, "acme")
    await service.tenants.create_tenant(operator, "acme", name="New Acme")
    await service.users.add_user(operator, "acme", "carol")
    assert (await client.ask("SET carol@acme owned")).startswith("-ERR")
    assert await status_of(service, "carol", "acme") is None
    client.close()


async def test_anonymous_set_lines_add_a_handful_of_audit_rows_not_one_each(
    setter: SetterServer, service: FingerplatService, operator: Context, seeded: Seeded
) -> None:
    before = len(await audit(service, operator))

    async def one_client() -> list[str]:
        client = await SetterClient.connect(setter)
        replies = [await client.ask(f"SET alice owned {n}") for n in range(10)]
        client.close()
        return replies

    replies = [r for rs in await asyncio.gather(*(one_client() for _ in range(20))) for r in rs]
    assert len(replies) == 200 and all(r.startswith("-ERR not authenticated") for r in replies)
    assert await status_of(service, "alice") == "reading"
    assert len(await audit(service, operator)) - before == 3
    [summary] = await summaries(service, operator)
    assert (summary.channel, summary.after["failures"]) == ("setter", 197)
    # The flood goes on: counted, but summarised at most once a minute.
    assert (await one_client())[0].startswith("-ERR not authenticated")
    assert len(await summaries(service, operator)) == 1
    service.clock = lambda: datetime.now(UTC) + timedelta(seconds=61)
    [later, _] = await summaries(service, operator)  # newest first
    assert later.after["failures"] == 10


async def test_auth_guesses_on_the_setter_are_slowed_then_refused(
    setter: SetterServer, service: FingerplatService, operator: Context, seeded: Seeded
) -> None:
    wrong = f"fp_{token_id(seeded.alice_token)}_{'A' * 43}"

    async def refused() -> bool:
        client = await SetterClient.connect(setter)
        reply = await client.ask(f"AUTH {wrong}")
        client.close()
        assert reply.startswith("-ERR")
        return "too many failed attempts from your address" in reply

    assert await until(refused, 8) == 6  # five guesses checked, the sixth refused unchecked
    # Another address is not affected, even for the same token.
    client = await SetterClient.connect(setter, OTHER_ADDRESS)
    assert (await client.ask(f"AUTH {seeded.alice_token}")).startswith("+OK authenticated")
    assert (await client.ask("SET alice fine from elsewhere")).startswith("+OK")
    client.close()


# -- the JSON API ----------------------------------------------------------------


async def test_api_token_guesses_get_429_with_retry_after(
    web_server: RunningWeb, http: aiohttp.ClientSession, operator: Context, seeded: Seeded
) -> None:
    url = f"{web_server.url}/api/v1/tenants/default/users/alice/status"
    wrong = f"fp_{token_id(seeded.alice_token)}_{'B' * 43}"
    answers: list[tuple[int, str | None]] = []

    async def refused() -> bool:
        async with http.put(url, json={"status": "owned"}, headers=bearer(wrong)) as r:
            answers.append((r.status, r.headers.get("Retry-After")))
            return r.status == 429

    assert await until(refused, 8) == 6
    assert [s for s, _ in answers] == [401] * 5 + [429]
    assert 0 < int(answers[-1][1] or 0) <= 300
    assert len(await denied_from(web_server.service, operator, "127.0.0.1")) == 3
    # The right token from another address still works.
    connector = aiohttp.TCPConnector(local_addr=(OTHER_ADDRESS, 0))
    async with aiohttp.ClientSession(connector=connector) as other, other.put(
            url, json={"status": "mine"}, headers=bearer(seeded.alice_token)) as r:
        assert r.status == 200


async def test_api_writes_without_credentials_are_audited_but_cannot_flood(
    web_server: RunningWeb, http: aiohttp.ClientSession, operator: Context, seeded: Seeded
) -> None:
    url = f"{web_server.url}/api/v1/tenants/default/users/alice/status"
    async with http.put(url, json={"status": "owned"}) as r:
        assert r.status == 401
    [event] = await denied_from(web_server.service, operator, "127.0.0.1")
    assert (event.action, event.channel, event.actor) == ("auth.token", "api", "anonymous")
    assert "/users/alice/status" in event.target
    async with http.put(url, json={"status": "x"}, headers={"Authorization": "Basic eDp5"}) as r:
        assert r.status == 401  # another scheme: a failure, audited the same way
    for _ in range(30):
        async with http.delete(url) as r:
            assert r.status == 401
    assert len(await denied_from(web_server.service, operator, "127.0.0.1")) == 3
    [summary] = await summaries(web_server.service, operator)
    assert (summary.channel, summary.after["failures"]) == ("api", 29)


# -- XML-RPC ---------------------------------------------------------------------


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def rpc(http: aiohttp.ClientSession, url: str, method: str, params: tuple[Any, ...],
              headers: dict[str, str] | None = None) -> Any:
    body = xmlrpc.client.dumps(params, method)
    async with http.post(url + "/RPC2", data=body.encode(), headers=headers) as r:
        assert r.status == 200
        text = await r.text()
    try:
        return xmlrpc.client.loads(text)[0][0]
    except xmlrpc.client.Fault as fault:
        return fault


async def test_a_multicall_of_wrong_tokens_is_one_check_and_one_audit_row(
    web_server: RunningWeb, http: aiohttp.ClientSession, operator: Context, seeded: Seeded
) -> None:
    calls = [{"methodName": "setUser", "params": ["alice", f"owned {n}"]} for n in range(50)]
    wrong = basic("x", f"fp_{token_id(seeded.alice_token)}_{'C' * 43}")
    results = await rpc(http, web_server.url, "system.multicall", (calls,), wrong)
    assert [r["faultCode"] for r in results] == [401] * 50
    [event] = await denied_from(web_server.service, operator, "127.0.0.1")
    assert (event.action, event.channel) == ("auth.token", "xmlrpc")

    async def refused() -> bool:
        result = await rpc(http, web_server.url, "setUser", ("alice", "owned"), wrong)
        assert isinstance(result, xmlrpc.client.Fault)
        return result.faultCode == 429

    assert await until(refused, 8) == 5  # the multicall was the first of five guesses
    assert await status_of(web_server.service, "alice") == "reading"


async def test_set_user_without_credentials_is_audited(
    web_server: RunningWeb, http: aiohttp.ClientSession, operator: Context, seeded: Seeded
) -> None:
    result = await rpc(http, web_server.url, "setUser", ("alice", "owned"))
    assert isinstance(result, xmlrpc.client.Fault) and result.faultCode == 401
    [event] = await denied_from(web_server.service, operator, "127.0.0.1")
    assert (event.action, event.channel, event.target) == ("auth.token", "xmlrpc", "POST /RPC2")


# -- admin pages -----------------------------------------------------------------


async def test_refused_admin_forms_and_pages_are_audited(
    admin: AdminClient, web_server: RunningWeb, operator: Context
) -> None:
    service = web_server.service
    await admin.login(ROOT_NAME, ROOT_PASSWORD)
    page = await admin.post("/admin/tenants", {"slug": "forged"}, csrf="forged-token")
    assert page.status == 403
    [csrf] = await audit(service, operator, action="web.csrf")
    assert (csrf.actor, csrf.outcome, csrf.target) == \
        ("admin:root", "denied", "POST /admin/tenants")
    # A tenant admin opening a platform page.
    await service.credentials.add_admin(
        operator, "deputy", "deputy-password", tenant_name="default")
    deputy = client_from(web_server.url, OTHER_ADDRESS)
    try:
        await deputy.login("deputy", "deputy-password")
        assert (await deputy.get("/admin/admins")).status == 403
    finally:
        await deputy.close()
    [listing] = await audit(service, operator, action="admin.list")
    assert (listing.actor, listing.outcome) == ("admin:deputy", "denied")
    # A form posted without any session (a forged cross-site post, say).
    anonymous = AdminClient(web_server.url)
    try:
        assert (await anonymous.post("/admin/tenants", {"slug": "x"}, csrf="x")).status == 403
    finally:
        await anonymous.close()
    [form] = await audit(service, operator, action="web.form")
    assert (form.actor, form.outcome) == ("anonymous", "denied")
