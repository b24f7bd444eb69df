"""The read cache seen through finger: every change is in the very next answer.

A node here is the real composition root (``Runtime``) with its finger
listener and its read cache wired the way ``serve`` wires them; changes are
made through the node's service (the setter, web and IRC adapters all call
it) or through a second service with an engine of its own, as the CLI or
another node would, on SQLite and PostgreSQL. Each test first makes the
cache hold the old answer (and checks it served it from the cache), so a
cache that missed an invalidation would fail it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from fingerplat.adapters.finger.server import FingerServer
from fingerplat.config import Config
from fingerplat.domain.model import Context
from fingerplat.server.runtime import Runtime
from fingerplat.service import FingerplatService
from tests.support.finger_client import finger

TIMEOUT = 5.0


class Node:
    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        assert runtime.service is not None
        self.service: FingerplatService = runtime.service
        self.finger_server = next(lst for lst in runtime.listeners if lst.name == "finger")

    async def finger(self, query: str) -> str:
        assert isinstance(self.finger_server, FingerServer)
        return await finger(self.finger_server, query)

    async def cached(self, query: str) -> str:
        """Ask twice; the second answer must come from the cache."""
        cache = self.service.read_cache
        assert cache is not None
        first = await self.finger(query)
        hits = cache.hits
        second = await self.finger(query)
        assert second == first
        assert cache.hits > hits, "the answer was not served from the cache"
        return second


async def start_node(database_url: str, **database: object) -> Runtime:
    config = Config.model_validate({
        "finger": {"listen": ["127.0.0.1:0"], "rate_limit": 100000, "access_log": False},
        "setter": {"listen": []},
        "web": {"listen": []},
        "database": database,
    })
    runtime = Runtime(config, database_url, announce=lambda _line: None)
    await runtime.start()
    return runtime


@pytest.fixture
async def node(database_url: str) -> AsyncIterator[Node]:
    runtime = await start_node(database_url)
    try:
        yield Node(runtime)
    finally:
        await runtime.stop()



async def eventually(node: Node, query: str, expected: str) -> str:
    """The answer once it contains ``expected`` (bounded wait: NOTIFY is asynchronous)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while True:
        answer = await node.finger(query)
        if expected in answer or loop.time() > deadline:
            return answer
        await asyncio.sleep(0.02)


async def test_status_and_plan_changes_show_in_the_next_answer(node: Node,
                                                               operator: Context) -> None:
    await node.service.users.add_user(operator, None, "alice", full_name="Alice")
    await node.service.users.set_status(operator, None, "alice", "asleep")
    assert "Status: asleep" in await node.cached("alice")
    assert "Status: asleep" in await node.cached("/W alice")

    await node.service.users.set_status(operator, None, "alice", "awake")
    assert "Status: awake" in await node.finger("alice")
    verbose = await node.finger("/W alice")
    assert "Status: awake" in verbose and "asleep" in verbose  # history too

    assert "No Plan." in await node.cached("alice")
    await node.service.users.set_plan(operator, None, "alice", "tea at four")
    assert "tea at four" in await node.finger("alice")


async def test_hidden_toggling(node: Node, operator: Context) -> None:
    await node.service.users.add_user(operator, None, "alice", full_name="Alice")
    assert "Login: alice" in await node.cached("alice")
    await node.service.users.edit_user(operator, None, "alice", hidden=True)
    assert await node.cached("alice") == "No such user: alice\r\n"
    await node.service.users.edit_user(operator, None, "alice", hidden=False)
    assert "Login: alice" in await node.finger("alice")


async def test_user_removal_and_return(node: Node, operator: Context) -> None:
    await node.service.users.add_user(operator, None, "bob", full_name="Bob")
    assert "Name: Bob" in await node.cached("bob")
    await node.service.users.remove_user(operator, None, "bob")
    assert await node.cached("bob") == "No such user: bob\r\n"  # the miss is cached too
    await node.service.users.add_user(operator, None, "bob", full_name="Robert")
    assert "Name: Robert" in await node.finger("bob")


async def test_tenant_domain_change(node: Node, operator: Context) -> None:
    await node.service.tenants.create_tenant(operator, "acme", domains=["acme.example"])
    await node.service.users.add_user(operator, "acme", "carol", full_name="Carol")
    assert "Name: Carol" in await node.cached("carol@acme.example")
    await node.service.tenants.update_tenant(operator, "acme", remove_domains=["acme.example"],
                                     add_domains=["acme.test"])
    # No longer hosted here: a forwarding request, refused (forwarding is off).
    assert "forwarding denied" in await node.finger("carol@acme.example")
    assert "Name: Carol" in await node.cached("carol@acme.test")
    await node.service.tenants.remove_tenant(operator, "acme")
    assert "forwarding denied" in await node.finger("carol@acme.test")


async def test_default_tenant_user_list_is_never_stale(node: Node, operator: Context) -> None:
    await node.service.users.add_user(operator, None, "alice")
    assert "alice" in await node.finger("")
    await node.service.users.add_user(operator, None, "bob")
    assert "bob" in await node.finger("")


async def test_change_made_by_another_process(node: Node, other_process: FingerplatService,
                                              operator: Context) -> None:
    """The CLI (or another node) writes the database; this node must not keep the old answer."""
    await other_process.users.add_user(operator, None, "dave", full_name="Dave")
    await other_process.users.set_status(operator, None, "dave", "first")
    assert "Status: first" in await eventually(node, "dave", "Status: first")
    assert "Status: first" in await node.cached("dave")
    await other_process.users.set_status(operator, None, "dave", "second")
    assert "Status: second" in await eventually(node, "dave", "Status: second")
    await other_process.users.edit_user(operator, None, "dave", hidden=True)
    assert await eventually(node, "dave", "No such user") == "No such user: dave\r\n"


async def test_cache_is_bounded(database_url: str, operator: Context) -> None:
    runtime = await start_node(database_url, read_cache=5)
    try:
        node = Node(runtime)
        for i in range(12):
            await node.service.users.add_user(operator, None, f"user{i}", full_name=f"User {i}")
        for i in range(12):
            assert f"Name: User {i}" in await node.finger(f"user{i}")
        assert node.service.read_cache is not None
        assert len(node.service.read_cache) <= 5
        for i in range(12):  # evicted entries are read again, correctly
            assert f"Name: User {i}" in await node.finger(f"user{i}")
    finally:
        await runtime.stop()


async def test_read_cache_can_be_turned_off(database_url: str, operator: Context) -> None:
    runtime = await start_node(database_url, read_cache=0)
    try:
        node = Node(runtime)
        assert node.service.read_cache is None
        await node.service.users.add_user(operator, None, "erin", full_name="Erin")
        assert "Name: Erin" in await node.finger("erin")
    finally:
        await runtime.stop()


async def test_cached_answers_are_counted_in_the_metrics(node: Node, operator: Context) -> None:
    await node.service.users.add_user(operator, None, "alice")
    for _ in range(3):
        await node.cached("alice")  # six queries, at least three from the cache
    text = node.runtime.metrics.render().decode()
    assert 'fingerplat_requests_total{adapter="finger"} 6.0' in text
    assert 'fingerplat_request_seconds_count{adapter="finger"} 6.0' in text
