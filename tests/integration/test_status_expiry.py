"""Statuses that expire (SPEC section 13), through real listeners on both databases.

Nodes are the real composition root with finger and web listeners. Most
nodes here run without the expiry sweeper, so the tests show that reads are
right with no write at all when the time comes: cached finger answers and
kept web pages carry their deadline. The sweeper's own job (history mark,
one ``status.expire`` audit event across racing nodes) is tested apart.
"""

from __future__ import annotations

import asyncio
import xmlrpc.client
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest

from fingerplat.adapters.finger.server import FingerServer
from fingerplat.config import Config
from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.expiry import Expiry
from fingerplat.domain.model import AuditQuery, Context, TokenScope
from fingerplat.repository.engine import create_engine
from fingerplat.server.runtime import Runtime
from fingerplat.service import FingerplatService

TIMEOUT = 10.0


async def until(check: Callable[[], Awaitable[bool]], timeout: float = TIMEOUT) -> None:
    """Poll ``check`` until it holds; fail after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await check():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


class Node:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        assert runtime.service is not None
        self.service: FingerplatService = runtime.service
        finger = next(lst for lst in runtime.listeners if lst.name == "finger")
        assert isinstance(finger, FingerServer)
        self.finger_address = finger.addresses[0].split(" ")[0].rsplit(":", 1)
        web = next(lst for lst in runtime.listeners if lst.name == "web")
        self.web_base = "http://" + web.addresses[0].split(" ")[0].removeprefix("http://")

    async def finger(self, query: str) -> str:
        host, port = self.finger_address
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 5)
        try:
            writer.write(query.encode() + b"\r\n")
            return (await asyncio.wait_for(reader.read(), 5)).decode()
        finally:
            writer.close()

    async def page(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as session, session.get(self.web_base + path) as r:
            return r.status, await r.text()


async def start_node(database_url: str, *, sweeper: bool) -> Node:
    config = Config.model_validate({
        "finger": {"listen": ["127.0.0.1:0"], "rate_limit": 100000, "access_log": False},
        "setter": {"listen": []},
        "web": {"listen": ["127.0.0.1:0"]},
    })
    runtime = Runtime(config, database_url, announce=lambda _line: None,
                      expiry_sweeper=sweeper)
    await runtime.start()
    return Node(runtime)


@pytest.fixture
async def nodes(database_url: str) -> AsyncIterator[tuple[Node, Node]]:
    """Two nodes on one database, neither sweeping."""
    first = await start_node(database_url, sweeper=False)
    second = await start_node(database_url, sweeper=False)
    try:
        yield first, second
    finally:
        await first.runtime.stop()
        await second.runtime.stop()


def wall_clock_seconds_until(moment: datetime) -> float:
    return (moment - datetime.now(UTC)).total_seconds()


async def test_expiry_is_seen_by_every_node_and_cache_with_no_write(
    nodes: tuple[Node, Node], operator: Context
) -> None:
    first, second = nodes
    await first.service.users.add_user(operator, None, "alice", full_name="Alice")
    user = await first.service.users.set_status(operator, None, "alice", "at lunch",
                                          expires=Expiry.after(2))
    assert user.status_expires_at is not None
    for node in nodes:
        # Keep a finger answer and a web page on both nodes (asked twice: the
        # second finger answer comes from the cache, the page from the door).
        for _ in range(2):
            assert "Status: at lunch (since " in await node.finger("alice")
            assert "until " in await node.finger("alice")
            status, body = await node.page("/~alice")
            assert status == 200 and "at lunch" in body and "until" in body
        assert node.service.read_cache is not None
        assert b"finger\0\0alice" in node.service.read_cache  # the default tenant's answer

    async def cleared() -> bool:
        answers = [await node.finger("alice") for node in nodes]
        pages = [(await node.page("/~alice"))[1] for node in nodes]
        return all("Status: (none)" in a for a in answers) and not any(
            "at lunch" in p for p in pages)

    await until(cleared)
    # No node swept: the row still holds the status, and no audit event exists yet.
    audit = await first.service.audit.audit_log(operator, AuditQuery(action="status.expire"))
    assert audit == []
    shown = await second.service.users.get_user(operator, None, "alice")
    assert shown.status is None  # the CLI's and the API's read compare with the clock too


async def test_sweeper_writes_history_and_one_audit_event_across_racing_nodes(
    database_url: str, operator: Context
) -> None:
    engine_a, engine_b = create_engine(database_url), create_engine(database_url)
    try:
        a, b = FingerplatService(engine_a), FingerplatService(engine_b)
        for name in ("alice", "bob", "carol"):
            await a.users.add_user(operator, None, name)
            await a.users.set_status(operator, None, name, f"{name} out", expires=Expiry.after(0.3))
        await a.users.set_status(operator, None, "carol", "back in")  # a new status: no expiry

        async def swept() -> bool:
            results = await asyncio.gather(a.users.expire_due(), b.users.expire_due())
            counts.append(sum(results))
            return sum(counts) >= 2

        counts: list[int] = []
        await until(swept)
        assert sum(counts) == 2  # alice and bob, each once
        assert await a.users.expire_due() == 0 and await b.users.expire_due() == 0
        events = await a.audit.audit_log(operator, AuditQuery(action="status.expire"))
        assert sorted(e.target for e in events) == ["alice@default", "bob@default"]
        assert all(e.actor == "system" and e.outcome == "ok" for e in events)
        history = await a.users.history(operator, None, "alice")
        assert history[0].text is None and history[0].actor == "system"
        assert history[1].text == "alice out" and history[1].expires_at is not None
        assert (await a.users.get_user(operator, None, "carol")).status == "back in"
    finally:
        await engine_a.dispose()
        await engine_b.dispose()


async def test_serve_sweeps_within_a_second_or_so(database_url: str, operator: Context) -> None:
    node = await start_node(database_url, sweeper=True)
    try:
        await node.service.users.add_user(operator, None, "alice")
        await node.service.users.set_status(operator, None, "alice", "brb", expires=Expiry.after(1))

        async def audited() -> bool:
            events = await node.service.audit.audit_log(
                operator, AuditQuery(action="status.expire"))
            return len(events) == 1

        await until(audited)
        history = await node.service.users.history(operator, None, "alice")
        assert [c.text for c in history] == [None, "brb"]
    finally:
        await node.runtime.stop()


async def test_setter_style_expiry_of_the_current_status(service: FingerplatService,
                                                         operator: Context) -> None:
    await service.users.add_user(operator, None, "alice")
    with pytest.raises(InvalidInput, match="no status to expire"):
        await service.users.set_expiry(operator, None, "alice", Expiry.parse("45m"))
    await service.users.set_status(operator, None, "alice", "in a meeting")
    user = await service.users.set_expiry(operator, None, "alice", Expiry.parse("1h30m"))
    assert user.status_expires_at is not None
    left = wall_clock_seconds_until(user.status_expires_at)
    assert timedelta(seconds=left) <= timedelta(hours=1, minutes=30)
    assert left > 80 * 60
    history = await service.users.history(operator, None, "alice")
    assert history[0].expires_at == user.status_expires_at
    with pytest.raises(InvalidInput, match="invalid expiry"):
        await service.users.set_expiry(operator, None, "alice", Expiry.parse("soon"))
    events = await service.audit.audit_log(operator, AuditQuery(action="status.expiry"))
    assert len(events) == 1 and events[0].after is not None
    assert events[0].after["expires_at"] is not None


async def test_until_uses_the_tenant_time_zone(service: FingerplatService,
                                               operator: Context) -> None:
    await service.tenants.update_tenant(operator, None, timezone="Asia/Kolkata")  # UTC+05:30
    await service.users.add_user(operator, None, "alice")
    user = await service.users.set_status(operator, None, "alice", "gone",
                                    expires=Expiry.until("23:59"))
    assert user.status_expires_at is not None
    local = user.status_expires_at.astimezone(UTC) + timedelta(hours=5, minutes=30)
    assert (local.hour, local.minute) == (23, 59)
    with pytest.raises(InvalidInput, match="unknown time zone"):
        await service.tenants.update_tenant(operator, None, timezone="Nowhere/Special")


async def test_expiry_through_api_xmlrpc_and_setter(database_url: str,
                                                    operator: Context) -> None:
    config = Config.model_validate({
        "finger": {"listen": ["127.0.0.1:0"], "access_log": False},
        "setter": {"listen": ["127.0.0.1:0"]},
        "web": {"listen": ["127.0.0.1:0"]},
    })
    runtime = Runtime(config, database_url, announce=lambda _line: None, expiry_sweeper=False)
    await runtime.start()
    try:
        node = Node(runtime)
        service = node.service
        await service.users.add_user(operator, None, "alice")
        secret = (await service.credentials.create_token(operator, TokenScope.TENANT,
                                             tenant_name="default")).secret
        auth = {"Authorization": f"Bearer {secret}"}
        url = node.web_base + "/api/v1/tenants/default/users/alice/status"
        async with aiohttp.ClientSession() as session:
            async with session.put(url, json={"status": "coffee", "expires_in": 600},
                                   headers=auth) as response:
                assert response.status == 200
                body = await response.json()
                assert body["status"] == "coffee" and body["expires_at"].endswith("Z")
            async with session.put(url, json={"status": "tea",
                                              "expires_at": "2026-01-01T00:00:00Z"},
                                   headers=auth) as response:
                assert response.status == 400
                assert "in the past" in (await response.json())["error"]
            for bad in ({"expires_in": -5}, {"expires_in": "soon"},
                        {"expires_at": "14:00"}, {"expires_at": "x", "expires_in": 5}):
                async with session.put(url, json={"status": "tea", **bad},
                                       headers=auth) as response:
                    assert response.status == 400, bad
            async with session.get(node.web_base + "/api/v1/tenants/default/users/alice") as r:
                assert (await r.json())["status"] == "coffee"  # the refused PUTs changed nothing
            async with session.get(node.web_base + "/api/v1/openapi.json") as r:
                schema = (await r.json())["components"]["schemas"]
                assert {"expires_at", "expires_in"} <= set(schema["StatusBody"]["properties"])

        host = node.web_base.removeprefix("http://")
        proxy = xmlrpc.client.ServerProxy(f"http://x:{secret}@{host}/RPC2")
        assert await asyncio.to_thread(proxy.setUser, "alice", "meeting", 3600)
        user = await service.users.get_user(operator, None, "alice")
        assert user.status == "meeting" and user.status_expires_at is not None
        with pytest.raises(xmlrpc.client.Fault) as fault:
            await asyncio.to_thread(proxy.setUser, "alice", "meeting", -1)
        assert "more than 0 seconds" in fault.value.faultString
        with pytest.raises(xmlrpc.client.Fault):
            await asyncio.to_thread(proxy.setUser, "alice", "meeting", "1h")

        setter = next(lst for lst in runtime.listeners if lst.name == "setter")
        s_host, s_port = setter.addresses[0].split(" ")[0].rsplit(":", 1)
        reader, writer = await asyncio.open_connection(s_host, int(s_port))
        try:
            replies = []
            for line in (f"AUTH {secret}", "EXPIRE alice 45m", "EXPIRE alice whenever",
                         "EXPIRE alice", "CLEAR alice", "EXPIRE alice 14:00"):
                writer.write(line.encode() + b"\r\n")
                replies.append((await asyncio.wait_for(reader.readline(), 5)).decode().strip())
        finally:
            writer.close()
        assert replies[0].startswith("+OK")
        assert replies[1].startswith("+OK status of alice expires at 20")
        assert replies[2].startswith("-ERR invalid expiry 'whenever'")
        assert replies[3].startswith("-ERR usage: EXPIRE")
        assert replies[5] == "-ERR alice has no status to expire"
    finally:
        await runtime.stop()
