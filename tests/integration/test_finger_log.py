"""Who fingered me (issue 16): opt-in lookups log, over real sockets on both databases.

Off unless both the tenant and the user opted in; every read surface records
time, channel and network only (never a full address); entries past the
retention are not shown and are deleted by the purge; only the user and the
tenant's admins may read them.
"""

from __future__ import annotations

import asyncio
import xmlrpc.client
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from sqlalchemy import select, update

from fingerplat.adapters.finger.server import FingerServer, start_finger_server
from fingerplat.adapters.web.server import WebServer, start_web_server
from fingerplat.config import FingerConfig, WebConfig
from fingerplat.domain.errors import PermissionDenied, UserNotFound
from fingerplat.domain.model import Channel, Context, Principal, Role, TokenScope
from fingerplat.metrics import Metrics
from fingerplat.repository import schema
from fingerplat.service import FingerplatService
from tests.support.finger_client import finger

TIMEOUT = 10.0
FAST = {"rate_limit": 100_000, "max_connections": 1000, "idle_timeout": 5}


@pytest.fixture(params=["no read cache", "read cache"])
async def svc(service: FingerplatService,
              request: pytest.FixtureRequest) -> AsyncIterator[FingerplatService]:
    service.finger_log.start_finger_log(days=7)
    if request.param == "read cache":
        service.enable_read_cache()
    yield service
    service.disable_read_cache()


@pytest.fixture
async def servers(svc: FingerplatService) -> AsyncIterator[tuple[FingerServer, WebServer]]:
    finger_server = await start_finger_server(svc, "127.0.0.1", 0, tenant=None,
                                              settings=FingerConfig(**FAST), metrics=Metrics())
    web_server = await start_web_server(svc, WebConfig(listen=["127.0.0.1:0"]),
                                        metrics=Metrics())
    yield finger_server, web_server
    await finger_server.close()
    await finger_server.drain(1)
    await web_server.drain(5)


async def look_everywhere(servers: tuple[FingerServer, WebServer], name: str) -> None:
    """One lookup of ``name`` through each public read surface (finger and web twice)."""
    finger_server, web_server = servers
    assert f"Login: {name}" in await finger(finger_server, name)
    assert f"Login: {name}" in await finger(finger_server, name)  # a kept answer, with a cache
    url = web_server.url
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        for _ in range(2):
            async with http.get(f"{url}/~{name}") as response:
                assert response.status == 200
        async with http.get(f"{url}/api/v1/tenants/default/users/{name}") as response:
            assert response.status == 200
        for method in ("getUser", "getUserInfo"):
            body = xmlrpc.client.dumps((name,), method)
            async with http.post(f"{url}/RPC2", data=body,
                                 headers={"Content-Type": "text/xml"}) as response:
                assert response.status == 200
                assert "<fault>" not in await response.text()
        async with http.get(f"{url}/.well-known/webfinger",
                            params={"resource": f"acct:{name}@default"}) as response:
            assert response.status == 200


async def flushed(service: FingerplatService) -> None:
    assert service.finger_log.finger_log_recorder is not None
    await service.finger_log.finger_log_recorder.flush(service.finger_log.write_finger_log)


async def all_rows(service: FingerplatService) -> list[tuple]:
    async with service.engine.connect() as conn:
        return [tuple(r) for r in await conn.execute(select(schema.finger_log))]


async def test_off_by_default_nothing_is_recorded(svc: FingerplatService, operator: Context,
                                                 servers) -> None:
    await svc.users.add_user(operator, None, "alice")
    await svc.users.add_user(operator, None, "bob")
    await look_everywhere(servers, "alice")
    # Only one side opted in: still nothing.
    await svc.users.edit_user(operator, None, "alice", finger_log=True)
    await look_everywhere(servers, "alice")
    await svc.tenants.update_tenant(operator, None, finger_log=True)
    await look_everywhere(servers, "bob")
    await flushed(svc)
    assert await all_rows(svc) == []
    assert await svc.finger_log.fingered(operator, None, "alice") == []
    assert await svc.finger_log.fingered(operator, None, "bob") == []


async def test_every_surface_records_time_channel_and_network_only(
        svc: FingerplatService, operator: Context, servers) -> None:
    await svc.users.add_user(operator, None, "alice")
    await svc.users.add_user(operator, None, "bob")
    await svc.tenants.update_tenant(operator, None, finger_log=True)
    await svc.users.edit_user(operator, None, "alice", finger_log=True)
    before = datetime.now(UTC) - timedelta(seconds=1)
    await look_everywhere(servers, "alice")
    await look_everywhere(servers, "bob")  # bob did not opt in
    await flushed(svc)

    entries = await svc.finger_log.fingered(operator, None, "alice")
    # Eight lookups: repeats through one channel from one network are one entry.
    counted = sorted((e.channel, e.count) for e in entries)
    assert counted == [("api", 1), ("finger", 2), ("web", 2), ("webfinger", 1), ("xmlrpc", 2)]
    assert {e.network for e in entries} == {"127.0.0.0/24"}
    assert all(before <= e.at <= datetime.now(UTC) + timedelta(seconds=1) for e in entries)
    assert await svc.finger_log.fingered(operator, None, "bob") == []
    rows = await all_rows(svc)
    assert len(rows) == 5
    assert not any("127.0.0.1" in str(value) for row in rows for value in row)

    # Opting out stops it at once, cached answers included.
    await svc.users.edit_user(operator, None, "alice", finger_log=False)
    await look_everywhere(servers, "alice")
    await flushed(svc)
    assert sorted(await all_rows(svc)) == sorted(rows)


async def test_the_background_writer_flushes_by_itself(svc: FingerplatService,
                                                       operator: Context, servers) -> None:
    await svc.users.add_user(operator, None, "alice")
    await svc.tenants.update_tenant(operator, None, finger_log=True)
    await svc.users.edit_user(operator, None, "alice", finger_log=True)
    writer = asyncio.create_task(svc.finger_log.finger_log_writer())
    try:
        await finger(servers[0], "alice")
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while not await svc.finger_log.fingered(operator, None, "alice"):
            assert asyncio.get_running_loop().time() < deadline, "never written"
            await asyncio.sleep(0.05)
        await finger(servers[0], "alice")
        svc.finger_log.finger_log_recorder.stop()  # a clean shutdown: what it holds is written
        await asyncio.wait_for(writer, TIMEOUT)
    finally:
        writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
    # The repeat raised the count of the row written first, on stop.
    assert [e.count for e in await svc.finger_log.fingered(operator, None, "alice")] == [2]


async def test_repeats_are_counted_and_a_new_generation_starts_a_new_entry(
        svc: FingerplatService, operator: Context, servers) -> None:
    await svc.users.add_user(operator, None, "alice")
    await svc.tenants.update_tenant(operator, None, finger_log=True)
    await svc.users.edit_user(operator, None, "alice", finger_log=True)
    recorder = svc.finger_log.finger_log_recorder
    assert recorder is not None
    await finger(servers[0], "alice")
    await recorder.flush(svc.finger_log.write_finger_log, final=False)  # a second later: written
    assert [(e.channel, e.count) for e in await svc.finger_log.fingered(
        operator, None, "alice")] == [
        ("finger", 1)]
    await finger(servers[0], "alice")
    await finger(servers[0], "alice", source="127.0.0.2")  # another address, the same /24
    await recorder.flush(svc.finger_log.write_finger_log, final=False)
    assert [e.count for e in await svc.finger_log.fingered(
        operator, None, "alice")] == [1]  # not yet
    await recorder.flush(svc.finger_log.write_finger_log)  # the generation ends: counted
    assert [(e.channel, e.network, e.count)
            for e in await svc.finger_log.fingered(operator, None, "alice")] == [
        ("finger", "127.0.0.0/24", 3)]
    await finger(servers[0], "alice")
    await flushed(svc)
    assert [e.count for e in await svc.finger_log.fingered(operator, None, "alice")] == [1, 3]
    rows = await all_rows(svc)
    assert not any(address in str(row) for row in rows for address in ("127.0.0.1",
                                                                       "127.0.0.2"))


async def test_old_entries_are_hidden_and_purged(svc: FingerplatService,
                                                 operator: Context) -> None:
    alice = await svc.users.add_user(operator, None, "alice")
    tenant = await svc.public.resolve_tenant(None)
    now = datetime.now(UTC)
    rows = [(tenant.id, alice.id, now - timedelta(days=age), "finger", "192.0.2.0/24", 1)
            for age in (0, 6, 8, 30)]
    await svc.finger_log.write_finger_log(rows)
    assert len(await svc.finger_log.fingered(
        operator, None, "alice")) == 2  # past 7 days: not shown
    assert await svc.finger_log.purge_finger_log() == 2
    assert len(await all_rows(svc)) == 2
    svc.finger_log.finger_log_days = 1  # [privacy] finger_log_days = 1 after a reload
    purger = asyncio.create_task(svc.finger_log.finger_log_purger(interval=0.05))
    try:
        deadline = asyncio.get_running_loop().time() + TIMEOUT
        while len(await all_rows(svc)) != 1:
            assert asyncio.get_running_loop().time() < deadline, "never purged"
            await asyncio.sleep(0.05)
    finally:
        purger.cancel()
        await asyncio.gather(purger, return_exceptions=True)
    assert [e.network for e in await svc.finger_log.fingered(
        operator, None, "alice")] == ["192.0.2.0/24"]


async def test_only_the_user_and_admins_may_read(svc: FingerplatService, operator: Context,
                                                servers) -> None:
    await svc.tenants.create_tenant(operator, "acme")
    alice = await svc.users.add_user(operator, None, "alice")
    bob = await svc.users.add_user(operator, None, "bob")
    await svc.tenants.update_tenant(operator, None, finger_log=True)
    await svc.users.edit_user(operator, None, "alice", finger_log=True)
    await finger(servers[0], "alice")
    await flushed(svc)
    tenant = await svc.public.resolve_tenant(None)
    acme = await svc.public.resolve_tenant("acme")

    def ctx(role: Role, tenant_id: int | None, user_id: int | None = None) -> Context:
        return Context(Principal(role, "someone", tenant_id=tenant_id, user_id=user_id),
                       Channel.API)

    assert len(await svc.finger_log.fingered(ctx(
        Role.USER, tenant.id, alice.id), None, "alice")) == 1
    assert len(await svc.finger_log.fingered(ctx(Role.TENANT_ADMIN, tenant.id), None, "alice")) == 1
    for who in (ctx(Role.USER, tenant.id, bob.id), ctx(Role.TENANT_ADMIN, acme.id),
                ctx(Role.ANONYMOUS, None)):
        with pytest.raises(PermissionDenied):
            await svc.finger_log.fingered(who, None, "alice")
    with pytest.raises(PermissionDenied):  # no probing for names either
        await svc.finger_log.fingered(ctx(Role.USER, tenant.id, bob.id), None, "nobody")
    with pytest.raises(UserNotFound):
        await svc.finger_log.fingered(operator, None, "nobody")

    async def token(scope: TokenScope, tenant_name: str | None, user: str | None = None) -> str:
        return (await svc.credentials.create_token(operator, scope, tenant_name=tenant_name,
                                       username=user)).secret

    url = f"{servers[1].url}/api/v1/tenants/default/users/alice/fingered"
    expected = {
        None: 401,
        await token(TokenScope.USER, None, "alice"): 200,
        await token(TokenScope.TENANT, None): 200,
        await token(TokenScope.PLATFORM, None): 200,
        await token(TokenScope.USER, None, "bob"): 403,
        await token(TokenScope.TENANT, "acme"): 403,
        "not-a-token": 401,
    }
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as http:
        for secret, status in expected.items():
            headers = {"Authorization": f"Bearer {secret}"} if secret else {}
            async with http.get(url, headers=headers) as response:
                assert response.status == status, (secret, await response.text())
                body = await response.json()
            if status == 200:
                assert body["username"] == "alice"
                assert [(e["channel"], e["network"], e["count"])
                        for e in body["fingered"]] == [("finger", "127.0.0.0/24", 1)]
            else:
                assert "error" in body
        async with http.get(f"{servers[1].url}/api/v1/openapi.json") as response:
            document = await response.json()
    assert "/api/v1/tenants/{tenant}/users/{user}/fingered" in document["paths"]


async def test_removed_users_entries_go_with_them(svc: FingerplatService,
                                                  operator: Context) -> None:
    alice = await svc.users.add_user(operator, None, "alice")
    tenant = await svc.public.resolve_tenant(None)
    row = (tenant.id, alice.id, datetime.now(UTC), "web", "2001:db8::/48", 1)
    await svc.finger_log.write_finger_log([row])
    await svc.users.remove_user(operator, None, "alice")
    assert await all_rows(svc) == []
    # Queued before the removal: dropped, no error (and its count change neither).
    assert await svc.finger_log.write_finger_log([row], [(1, 5)]) == [None]
    assert await all_rows(svc) == []


async def test_flag_changes_are_audited(svc: FingerplatService, operator: Context) -> None:
    await svc.users.add_user(operator, None, "alice")
    await svc.tenants.update_tenant(operator, None, finger_log=True)
    await svc.users.edit_user(operator, None, "alice", finger_log=True)
    from fingerplat.domain.model import AuditQuery

    events = await svc.audit.audit_log(operator, AuditQuery(tenant="default", limit=2))
    assert events[0].action == "user.update" and events[0].after["finger_log"] is True
    assert events[1].action == "tenant.update" and events[1].after["finger_log"] is True
    async with svc.engine.begin() as conn:  # the defaults of the schema: off
        await conn.execute(update(schema.users).values(finger_log=False))
    assert (await svc.users.get_user(operator, None, "alice")).finger_log is False


async def test_a_rejected_network_is_refused_and_not_recorded_even_from_a_kept_answer(
        svc: FingerplatService, operator: Context, servers) -> None:
    # Issue 15 meets issue 16: a logged user's kept answer still checks the client.
    finger_server, _web = servers
    await svc.users.add_user(operator, None, "alice")
    await svc.tenants.update_tenant(operator, None, finger_log=True,
                            add_rejected_networks=["127.0.0.2/32"])
    await svc.users.edit_user(operator, None, "alice", finger_log=True)
    for _ in range(2):  # the second one is a kept answer, with a cache
        assert "Login: alice" in await finger(finger_server, "alice", source="127.0.0.1")
    for _ in range(2):
        answer = await finger(finger_server, "alice", source="127.0.0.2")
        assert "not allowed" in answer and "alice" not in answer
    await flushed(svc)
    entries = await svc.finger_log.fingered(operator, None, "alice")
    assert [(e.channel, e.count) for e in entries] == [("finger", 2)]
