"""Change events across nodes: two services on one PostgreSQL database.

Each "node" is a FingerplatService with its own engine and EventBus, as two
``fingerplat serve`` processes would have; they share only the database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from fingerplat.domain.model import ChangeEvent, TokenScope
from fingerplat.repository import notify
from fingerplat.repository.engine import create_engine
from fingerplat.service import FingerplatService
from fingerplat.service.event_bridge import EventBridge, decode, encode, start_event_bridge

TIMEOUT = 5.0


class Inbox:
    """Collects a bus's events; ``next`` waits (bounded) for the next one."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[ChangeEvent] = asyncio.Queue()

    def __call__(self, event: ChangeEvent) -> None:
        self.queue.put_nowait(event)

    async def next(self) -> ChangeEvent:
        return await asyncio.wait_for(self.queue.get(), TIMEOUT)



async def nothing_more(nodes, operator) -> None:
    """Neither inbox gets anything more than each node's next change.

    A positive marker instead of waiting to see nothing: a change on B, then
    one on A. Each node's listener is handed NOTIFYs in commit order, so
    anything sent earlier (a node's own change echoed back to it, an event
    that should have stayed local) would come before the other node's marker.
    """
    (a, b), _bridges, (inbox_a, inbox_b) = nodes
    await b.users.add_user(operator, None, "marker-b")
    assert [(e.username, e.remote) for e in (await inbox_b.next(), await inbox_a.next())] == [
        ("marker-b", False), ("marker-b", True)]
    await a.users.add_user(operator, None, "marker-a")
    assert [(e.username, e.remote) for e in (await inbox_a.next(), await inbox_b.next())] == [
        ("marker-a", False), ("marker-a", True)]
    assert inbox_a.queue.empty() and inbox_b.queue.empty()


@pytest.fixture
async def nodes(db_factory) -> AsyncIterator[tuple]:
    url = await db_factory.make("postgresql")
    engines = [create_engine(url), create_engine(url)]
    services = [FingerplatService(e) for e in engines]
    bridges = [EventBridge(e, s.events, keepalive=0.5) for e, s in zip(engines, services,
                                                                       strict=True)]
    inboxes = [Inbox(), Inbox()]
    try:
        for service, bridge, inbox in zip(services, bridges, inboxes, strict=True):
            service.events.subscribe(inbox)
            assert await bridge.start(wait=TIMEOUT)
        yield services, bridges, inboxes
    finally:
        for bridge in bridges:
            await bridge.stop()
        for engine in engines:
            await engine.dispose()


async def test_each_node_sees_the_others_changes(nodes, operator):
    (a, b), _bridges, (inbox_a, inbox_b) = nodes
    await a.users.add_user(operator, None, "alice")
    local = await inbox_a.next()
    assert (local.kind, local.username, local.remote) == ("user", "alice", False)
    remote = await inbox_b.next()
    assert (remote.kind, remote.username, remote.tenant_slug, remote.remote) == (
        "user", "alice", "default", True)
    assert remote.tenant_id == local.tenant_id

    await b.users.set_status(operator, None, "alice", "away ☕")
    assert (await inbox_b.next()).remote is False
    seen_by_a = await inbox_a.next()
    assert (seen_by_a.kind, seen_by_a.status, seen_by_a.remote) == ("status", "away ☕", True)
    assert seen_by_a.data == {"hidden": False}

    issued = await a.credentials.create_token(operator, TokenScope.TENANT)
    await a.credentials.revoke_token(operator, issued.token.id)
    assert (await inbox_a.next()).kind == "token"
    token_event = await inbox_b.next()
    assert (token_event.kind, token_event.data) == ("token", {"id": issued.token.id})
    # a node's own notifications are not delivered to it a second time
    await nothing_more(nodes, operator)


async def test_many_changes_arrive_in_order(nodes, operator):
    (a, _b), _bridges, (_inbox_a, inbox_b) = nodes
    await a.users.add_user(operator, None, "alice")
    assert (await inbox_b.next()).kind == "user"
    for i in range(20):
        await a.users.set_status(operator, None, "alice", f"status {i}")
    got = [(await inbox_b.next()).status for _ in range(20)]
    assert got == [f"status {i}" for i in range(20)]


async def test_lost_listen_connection_resubscribes_and_asks_for_resync(nodes, operator):
    (a, _b), (bridge_a, bridge_b), (inbox_a, inbox_b) = nodes
    dsn = notify.asyncpg_dsn(a.engine)
    admin = await asyncpg.connect(dsn)
    try:
        killed = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE application_name = $1 AND datname = current_database()",
            notify.LISTENER_APPLICATION_NAME,
        )
    finally:
        await admin.close()
    assert killed == 2  # both nodes' listeners
    for inbox, bridge in ((inbox_a, bridge_a), (inbox_b, bridge_b)):
        lost, back = await inbox.next(), await inbox.next()
        assert (lost.kind, lost.data, lost.remote) == ("resync", {"reason": "lost"}, True)
        assert (back.kind, back.data) == ("resync", {"reason": "resubscribed"})
        await bridge.listener.wait_subscribed(TIMEOUT)
        assert bridge.connected
    await a.users.add_user(operator, None, "bob")
    assert (await inbox_a.next()).remote is False
    event = await inbox_b.next()
    assert (event.kind, event.username, event.remote) == ("user", "bob", True)
    await nothing_more(nodes, operator)  # resync events are never sent to other nodes


async def test_payload_round_trip_and_limits():
    event = ChangeEvent("status", 3, "acme", "alice", status="x" * 280, data={"hidden": True})
    origin, back = decode(encode(event, "node1"))
    assert origin == "node1"
    assert back == ChangeEvent("status", 3, "acme", "alice", status="x" * 280,
                               data={"hidden": True}, remote=True)
    huge = ChangeEvent("plan", 3, "acme", "alice", data={"blob": "é" * 5000})
    payload = encode(huge, "node1")
    assert len(payload.encode()) <= notify.MAX_PAYLOAD_BYTES
    _, small = decode(payload)
    assert (small.kind, small.username, small.data) == ("plan", "alice", {"truncated": True})
    for garbage in ["", "{", "[]", '{"v": 99}', '{"v": 1}', "null"]:
        assert decode(garbage) is None


async def test_sqlite_keeps_events_in_process(db_factory, operator):
    url = await db_factory.make("sqlite")
    engine = create_engine(url)
    try:
        service = FingerplatService(engine)
        assert await start_event_bridge(engine, service.events) is None
        inbox = Inbox()
        service.events.subscribe(inbox)
        await service.users.add_user(operator, None, "alice")
        assert (await inbox.next()).remote is False
    finally:
        await engine.dispose()


async def test_bridge_without_database_keeps_trying_and_stops_cleanly():
    engine = create_engine("postgresql+asyncpg://postgres@127.0.0.1:1/x")
    try:
        service = FingerplatService(engine)
        bridge = EventBridge(engine, service.events)
        assert await bridge.start(wait=0.5) is False
        assert not bridge.connected
        # a change event with nowhere to go is logged, never raised to the writer
        await service.events.publish(ChangeEvent("status", 1, "default", "alice", "x"))
        await asyncio.wait_for(bridge.stop(), TIMEOUT)
    finally:
        await engine.dispose()
