"""Names that do not exist are answered without a database read, and never wrongly.

A node here is the real composition root (``Runtime``) with its finger
listener, read cache and membership wired as ``serve`` wires them. Each test
lets the membership settle (so the fast path is in use), makes a change
through this node, another process or another node, and checks the very
next answer (or, across processes, the answer once the change's event has
arrived) and that the membership agrees with the database afterwards. The
reads a query makes are counted on the node's service, so "no database
read" is asserted, not assumed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from sqlalchemy import text

from fingerplat.domain.imports import ImportRecord
from fingerplat.domain.model import ChangeEvent, Context
from fingerplat.repository.engine import create_engine
from fingerplat.service import FingerplatService
from fingerplat.service.base import UseCase
from fingerplat.service.event_bridge import send_to_nodes
from fingerplat.service.membership import Membership
from tests.integration.test_read_cache import Node, eventually, start_node

NO_SUCH = "No such user: {}\r\n"


class CountingNode(Node):
    """A node whose public database reads are counted."""

    def __init__(self, runtime: Any) -> None:
        super().__init__(runtime)
        self.reads = 0
        # Every component's public reads (the membership's own loads are not
        # counted: it keeps the read it was given when the cache was enabled).
        for part in vars(self.service).values():
            if isinstance(part, UseCase):
                part._read = self._counted(part._read)  # type: ignore[method-assign]
        hot = self.service.hot_reads  # PostgreSQL: a miss's user read takes this path
        if hot is not None:
            hot_user = hot.user

            async def user(tenant_id: int, username: str) -> Any:
                self.reads += 1
                return await hot_user(tenant_id, username)

            hot.user = user  # type: ignore[method-assign]

    def _counted(self, original: Callable[[Any], Awaitable[Any]]
                 ) -> Callable[[Any], Awaitable[Any]]:
        async def read(fetch: Callable[[Any], Awaitable[Any]]) -> Any:
            self.reads += 1
            return await original(fetch)

        return read

    @property
    def membership(self) -> Membership | None:
        cache = self.service.read_cache
        return cache.membership if cache is not None else None

    async def settled(self) -> Membership:
        membership = self.membership
        assert membership is not None
        await membership.settled()
        return membership

    async def reads_for(self, query: str) -> tuple[str, int]:
        """The answer to ``query`` and the database reads it took (membership settled)."""
        await self.settled()
        before = self.reads
        answer = await self.finger(query)
        return answer, self.reads - before


async def visible_names(node: Node, tenant_id: int) -> set[str]:
    """What the database says, read through the node's own engine."""
    assert node.runtime.engine is not None
    async with node.runtime.engine.connect() as conn:
        rows = await conn.execute(
            text("SELECT username FROM users WHERE tenant_id = :t AND NOT hidden"),
            {"t": tenant_id})
        return {r[0] for r in rows}


async def assert_exact(node: CountingNode, tenant_slug: str | None = None) -> None:
    tenant = await node.service.public.resolve_tenant(tenant_slug)  # (SQLite: notices the writes)
    membership = await node.settled()
    assert membership.names(tenant.id) == await visible_names(node, tenant.id)


@pytest.fixture
async def node(database_url: str) -> AsyncIterator[CountingNode]:
    runtime = await start_node(database_url)
    try:
        yield CountingNode(runtime)
    finally:
        await runtime.stop()


async def test_missing_and_hidden_names_take_no_read_and_the_same_answer(
        node: CountingNode, operator: Context) -> None:
    await node.service.users.add_user(operator, None, "alice", full_name="Alice")
    await node.service.users.add_user(operator, None, "hilda", full_name="Hilda")
    await node.service.users.edit_user(operator, None, "hilda", hidden=True)
    cache = node.service.read_cache
    assert cache is not None

    answer, reads = await node.reads_for("alice")
    assert "Name: Alice" in answer and reads >= 1  # a real user is read (then cached)

    kept = len(cache)
    for query, name in (("nosuchname", "nosuchname"), ("hilda", "hilda"),
                        ("/W hilda", "hilda"), ("/W ghost", "ghost"),
                        ("HILDA", "hilda")):
        answer, reads = await node.reads_for(query)
        assert answer == NO_SUCH.format(name), query
        assert reads == 0, query
    # Nothing was kept for them: a flood of names cannot push real users out.
    assert len(cache) == kept
    assert "Name: Alice" in await node.cached("alice")
    await assert_exact(node)


async def test_exact_after_every_kind_of_change(node: CountingNode, operator: Context) -> None:
    """Each change is in the very next answer, and the membership settles to the database."""
    service = node.service
    await node.settled()
    assert await node.finger("bob") == NO_SUCH.format("bob")

    await service.users.add_user(operator, None, "bob", full_name="Bob")  # added
    assert "Name: Bob" in await node.finger("bob")
    await assert_exact(node)

    await service.users.edit_user(operator, None, "bob", hidden=True)  # hidden
    assert await node.finger("bob") == NO_SUCH.format("bob")
    await assert_exact(node)
    answer, reads = await node.reads_for("bob")
    assert (answer, reads) == (NO_SUCH.format("bob"), 0)

    await service.users.edit_user(operator, None, "bob", hidden=False)  # shown again
    assert "Name: Bob" in await node.finger("bob")
    await assert_exact(node)

    await service.users.remove_user(operator, None, "bob")  # removed
    assert await node.finger("bob") == NO_SUCH.format("bob")
    await assert_exact(node)
    assert (await node.reads_for("bob"))[1] == 0

    await service.users.add_user(operator, None, "bob", full_name="Robert")  # back
    assert "Name: Robert" in await node.finger("bob")
    await assert_exact(node)


async def test_exact_across_tenant_changes(node: CountingNode, operator: Context) -> None:
    service = node.service
    await node.settled()
    # A tenant created after start, and its users.
    await service.tenants.create_tenant(operator, "acme", domains=["acme.example"])
    await service.users.add_user(operator, "acme", "carol", full_name="Carol")
    assert "Name: Carol" in await node.finger("carol@acme.example")
    assert await node.finger("dan@acme.example") == NO_SUCH.format("dan")
    await assert_exact(node, "acme")
    answer, reads = await node.reads_for("dan@acme.example")
    assert (answer, reads) == (NO_SUCH.format("dan"), 0)

    # Its domain renamed: the old one is forwarding now, the new one answers.
    await service.tenants.update_tenant(operator, "acme", remove_domains=["acme.example"],
                                add_domains=["acme.test"])
    assert "forwarding denied" in await node.finger("carol@acme.example")
    assert "Name: Carol" in await node.finger("carol@acme.test")
    assert await node.finger("dan@acme.test") == NO_SUCH.format("dan")
    await assert_exact(node, "acme")

    # Removed, and a tenant of the same name made again with other users.
    await service.tenants.remove_tenant(operator, "acme")
    await service.tenants.create_tenant(operator, "acme", domains=["acme.test"])
    await service.users.add_user(operator, "acme", "dan", full_name="Dan")
    assert await node.finger("carol@acme.test") == NO_SUCH.format("carol")
    assert "Name: Dan" in await node.finger("dan@acme.test")
    await assert_exact(node, "acme")


async def test_an_import_is_seen_whole(node: CountingNode, operator: Context) -> None:
    """A large import sends one tenant-wide event instead of one per user."""
    await node.settled()
    records = [ImportRecord(line=i + 1, username=f"imp{i}", full_name=f"Imported {i}",
                            hidden=(i == 7)) for i in range(300)]
    await node.service.imports.import_records(operator, None, records)
    for i in (0, 150, 299):
        assert f"Name: Imported {i}" in await node.finger(f"imp{i}")
    assert await node.finger("imp7") == NO_SUCH.format("imp7")
    await assert_exact(node)
    assert (await node.reads_for("imp300"))[1] == 0
    assert (await node.reads_for("imp7"))[1] == 0


async def test_a_change_by_another_process(database_url: str, node: CountingNode,
                                           operator: Context) -> None:
    """The CLI writes the database (SQLite: seen by the file's change; PostgreSQL: NOTIFY)."""
    await node.settled()
    assert await node.finger("erin") == NO_SUCH.format("erin")
    engine = create_engine(database_url)
    try:
        other = FingerplatService(engine)
        send_to_nodes(engine, other.events)
        await other.users.add_user(operator, None, "erin", full_name="Erin")
        assert "Name: Erin" in await eventually(node, "erin", "Name: Erin")
        await assert_exact(node)
        await other.users.edit_user(operator, None, "erin", hidden=True)
        assert await eventually(node, "erin", "No such") == NO_SUCH.format("erin")
        await assert_exact(node)
    finally:
        await engine.dispose()


async def test_resync_reads_everything_again(node: CountingNode, operator: Context) -> None:
    """After a lost LISTEN connection nothing is assumed: a user written with no event is found."""
    await node.settled()
    tenant = await node.service.public.resolve_tenant(None)
    assert await node.finger("frank") == NO_SUCH.format("frank")
    assert node.runtime.engine is not None
    async with node.runtime.engine.begin() as conn:  # a write no event tells of
        await conn.execute(text(
            "INSERT INTO users (tenant_id, username, full_name, office, phone, project, hidden,"
            " created_at) VALUES (:t, 'frank', 'Frank', '', '', '', false, CURRENT_TIMESTAMP)"),
            {"t": tenant.id})
    await node.service.events.publish(ChangeEvent("resync", None, data={"reason": "lost"},
                                                  remote=True))
    assert "Name: Frank" in await node.finger("frank")
    await assert_exact(node)


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_two_nodes(database_url: str, operator: Context) -> None:
    """A user added through node A is found through node B, and missing again when removed."""
    a = CountingNode(await start_node(database_url))
    b = CountingNode(await start_node(database_url))
    try:
        await a.settled()
        await b.settled()
        await b.finger("warm")  # the default tenant is read once, then cached
        assert (await b.reads_for("gina")) == (NO_SUCH.format("gina"), 0)
        await a.service.users.add_user(operator, None, "gina", full_name="Gina")
        assert "Name: Gina" in await eventually(b, "gina", "Name: Gina")
        await assert_exact(b)
        await a.service.users.edit_user(operator, None, "gina", hidden=True)
        assert await eventually(b, "gina", "No such") == NO_SUCH.format("gina")
        await assert_exact(b)
        assert (await b.reads_for("gina")) == (NO_SUCH.format("gina"), 0)
        await a.service.users.edit_user(operator, None, "gina", hidden=False)
        assert "Name: Gina" in await eventually(b, "gina", "Name: Gina")
        await a.service.users.remove_user(operator, None, "gina")
        assert await eventually(b, "gina", "No such") == NO_SUCH.format("gina")
        await assert_exact(b)
    finally:
        await a.runtime.stop()
        await b.runtime.stop()


async def test_loads_in_pages(database_url: str, operator: Context,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    """More names than one page: every one of them is loaded."""
    from fingerplat.service import membership

    monkeypatch.setattr(membership, "PAGE", 7)
    runtime = await start_node(database_url)
    try:
        node = CountingNode(runtime)
        for i in range(30):
            await node.service.users.add_user(operator, None, f"p{i:02d}")
        await node.service.users.edit_user(operator, None, "p07", hidden=True)
        await node.service.events.publish(ChangeEvent("resync", None, remote=True))
        tenant = await node.service.public.resolve_tenant(None)  # (SQLite: notices the writes)
        membership_ = await node.settled()
        assert membership_.names(tenant.id) == {f"p{i:02d}" for i in range(30)} - {"p07"}
        # The first unknown name of a tenant reads its (small) list of pseudo-user
        # names once, since a pseudo-user is no user either; after that, none.
        assert (await node.reads_for("zz-first"))[1] <= 1
        assert (await node.reads_for("p07")) == (NO_SUCH.format("p07"), 0)
    finally:
        await runtime.stop()


# -- warm start ------------------------------------------------------------------------


async def _seeded(database_url: str, operator: Context, count: int) -> None:
    engine = create_engine(database_url)
    try:
        other = FingerplatService(engine)
        for i in range(count):
            await other.users.add_user(operator, None, f"w{i:02d}", full_name=f"Warm {i}")
            await other.users.set_status(operator, None, f"w{i:02d}", f"status {i}")
        await other.users.set_plan(operator, None, "w03", "a plan\nof two lines")
        await other.users.edit_user(operator, None, "w05", hidden=True)
    finally:
        await engine.dispose()


async def test_a_fresh_server_answers_existing_names_from_memory(
        database_url: str, operator: Context) -> None:
    """Warmed at start: the first query for a user takes no read, and reads as a filled one."""
    await _seeded(database_url, operator, 12)
    cold = Node(await start_node(database_url, read_cache=0))
    runtime = await start_node(database_url)
    try:
        node = CountingNode(runtime)
        assert runtime._warming is not None
        await runtime._warming
        await node.finger("warm-up")  # the tenant
        for name in ("w00", "w03", "w11"):
            answer, reads = await node.reads_for(name)
            assert reads == 0, name
            assert answer == await cold.finger(name)
        assert "a plan" in await node.finger("w03")
        assert (await node.reads_for("w05")) == (NO_SUCH.format("w05"), 0)  # hidden: not warmed
        # Warmed entries follow changes like filled ones.
        await node.service.users.set_status(operator, None, "w00", "changed")
        assert "changed" in await node.finger("w00")
        await node.service.users.edit_user(operator, None, "w11", hidden=True)
        assert await node.finger("w11") == NO_SUCH.format("w11")
    finally:
        await runtime.stop()
        await cold.runtime.stop()


async def test_a_fresh_server_answers_user_at_domain_of_every_tenant_from_memory(
        database_url: str, operator: Context) -> None:
    """Warmed at start across tenants: ``user@domain`` takes no read (the tenant, its
    pseudo-user names and the answer are kept), reads as a filled one, and follows
    changes of the user and of the tenant's domains."""
    engine = create_engine(database_url)
    try:
        other = FingerplatService(engine)
        await other.tenants.create_tenant(operator, "acme", domains=["acme.example", "acme.test"])
        await other.tenants.create_tenant(operator, "beta", domains=["beta.example"])
        for tenant in ("acme", "beta"):
            for i in range(3):
                await other.users.add_user(operator, tenant, f"u{i}", full_name=f"{tenant} {i}")
                await other.users.set_status(operator, tenant, f"u{i}", f"{tenant} status {i}")
        await other.users.edit_user(operator, "beta", "u2", hidden=True)
        await other.pseudo_users.add_pseudo_user(operator, "beta", "help", "help")
    finally:
        await engine.dispose()
    cold = Node(await start_node(database_url, read_cache=0))
    runtime = await start_node(database_url)
    try:
        node = CountingNode(runtime)
        assert runtime._warming is not None
        await runtime._warming
        for query in ("u0@acme.example", "u1@acme.test", "u1@beta.example"):
            answer, reads = await node.reads_for(query)
            assert reads == 0, query
            assert answer == await cold.finger(query)
        assert "acme status 1" in await node.finger("u1@acme.test")
        for query, name in (("u2@beta.example", "u2"), ("ghost@acme.example", "ghost")):
            assert (await node.reads_for(query)) == (NO_SUCH.format(name), 0), query
        assert "No such user" not in await node.finger("help@beta.example")  # a pseudo-user
        await node.service.users.set_status(operator, "beta", "u1", "changed")
        assert "changed" in await node.finger("u1@beta.example")
        await node.service.tenants.update_tenant(operator, "acme", remove_domains=["acme.test"])
        assert await node.finger("u1@acme.test") == await cold.finger("u1@acme.test")
        assert "acme status 1" not in await node.finger("u1@acme.test")
    finally:
        await runtime.stop()
        await cold.runtime.stop()


async def test_warming_stops_at_the_budget(database_url: str, operator: Context) -> None:
    """Warming fills what fits and never evicts; the rest is read on demand."""
    await _seeded(database_url, operator, 12)
    runtime = await start_node(database_url, read_cache="3KB")
    try:
        node = CountingNode(runtime)
        assert runtime._warming is not None
        await runtime._warming
        cache = node.service.read_cache
        assert cache is not None
        assert 0 < cache.bytes <= 3 * 1024
        for i in range(12):
            if i != 5:
                assert f"Name: Warm {i}" in await node.finger(f"w{i:02d}")
        assert cache.bytes <= 3 * 1024
    finally:
        await runtime.stop()


@pytest.mark.parametrize("backend", ["postgresql"])
async def test_warmed_answers_follow_another_nodes_changes(database_url: str,
                                                           operator: Context) -> None:
    await _seeded(database_url, operator, 6)
    a = CountingNode(await start_node(database_url))
    b = CountingNode(await start_node(database_url))
    try:
        assert b.runtime._warming is not None
        await b.runtime._warming
        await b.finger("warm-up")
        assert (await b.reads_for("w01"))[1] == 0
        await a.service.users.set_status(operator, None, "w01", "moved on")
        assert "moved on" in await eventually(b, "w01", "moved on")
        await a.service.users.remove_user(operator, None, "w02")
        assert await eventually(b, "w02", "No such") == NO_SUCH.format("w02")
    finally:
        await a.runtime.stop()
        await b.runtime.stop()
