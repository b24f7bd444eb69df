"""Answers the warm start kept in the compact store: every change is in the next answer.

``serve`` renders every visible user's short finger answer before it
listens and keeps most of them in a compact per-listener store (name ->
bytes, compressed when the tenant's answers would not fit the budget as
they are). Each test starts a real node on a database seeded beforehand,
checks that the answer is served without a database read, changes the
user through the node or through another process, and checks the very next
answer, on SQLite and PostgreSQL, with plain and compressed stores.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fingerplat.domain.expiry import Expiry
from fingerplat.domain.model import Context
from fingerplat.repository.engine import create_engine
from fingerplat.service import FingerplatService
from tests.integration.test_membership import CountingNode
from tests.integration.test_read_cache import start_node
from tests.integration.test_status_expiry import until

USERS = 300


@pytest.fixture(params=["plain", "compressed"])
async def node(request: pytest.FixtureRequest, database_url: str,
               operator: Context) -> AsyncIterator[CountingNode]:
    engine = create_engine(database_url)
    try:
        seeder = FingerplatService(engine)
        await seeder.tenants.create_tenant(operator, "acme", domains=["acme.example"])
        for i in range(USERS):
            await seeder.users.add_user(operator, None, f"user{i:03d}", full_name=f"User {i}")
        await seeder.users.set_status(operator, None, "user001", "reading")
    finally:
        await engine.dispose()
    # 300 answers of about 100 bytes: 54 KB as they are, about 30 KB compressed.
    budget = "40k" if request.param == "compressed" else "auto"
    runtime = await start_node(database_url, read_cache=budget)
    try:
        assert runtime._warming is not None
        await runtime._warming
        node = CountingNode(runtime)
        cache = node.service.read_cache
        assert cache is not None
        assert cache.compact_answers() >= USERS - 10
        assert (cache._compact[0].zdict is not None) == (request.param == "compressed")
        yield node
    finally:
        await runtime.stop()



async def kept(node: CountingNode, query: str) -> str:
    """The answer, which must come without a database read."""
    answer, reads = await node.reads_for(query)
    assert reads == 0, f"{query!r} was not answered from memory"
    return answer


# On SQLite every commit (this process's too) drops everything kept (the
# guard cannot tell whose commit it was), so each test checks what is kept
# before its first change.


async def test_status_set_cleared_and_plan(node: CountingNode, operator: Context) -> None:
    assert "Status: reading" in await kept(node, "user001")
    assert "No Plan." in await kept(node, "user002")
    await node.service.users.set_status(operator, None, "user001", "writing")
    assert "Status: writing" in await node.finger("user001")
    await node.service.users.set_status(operator, None, "user001", None)
    assert "Status: (none)" in await node.finger("user001")
    await node.service.users.set_plan(operator, None, "user002", "tea at four")
    assert "tea at four" in await node.finger("user002")


async def test_expiry(node: CountingNode, operator: Context) -> None:
    assert "Status: (none)" in await kept(node, "user004")
    await node.service.users.set_status(
        operator, None, "user004", "coffee", expires=Expiry.after(1))
    assert "Status: coffee" in await node.finger("user004")

    async def expired() -> bool:
        return "Status: (none)" in await node.finger("user004")

    await until(expired)


async def test_hidden_removed_and_back(node: CountingNode, operator: Context) -> None:
    assert "Login: user005" in await kept(node, "user005")
    assert "Name: User 6" in await kept(node, "user006")
    assert "Name: User 7" in await kept(node, "user007")
    await node.service.users.edit_user(operator, None, "user005", hidden=True)
    assert await node.finger("user005") == "No such user: user005\r\n"
    await node.service.users.edit_user(operator, None, "user005", hidden=False)
    assert "Login: user005" in await node.finger("user005")
    await node.service.users.remove_user(operator, None, "user006")  # renaming is removal + adding
    assert await node.finger("user006") == "No such user: user006\r\n"
    await node.service.users.add_user(operator, None, "user006", full_name="Someone Else")
    assert "Name: Someone Else" in await node.finger("user006")
    await node.service.users.edit_user(operator, None, "user007", full_name="Renamed Seven")
    assert "Name: Renamed Seven" in await node.finger("user007")


async def test_tenant_settings_and_domains(node: CountingNode, operator: Context) -> None:
    assert "Name: User 8" in await kept(node, "user008")
    assert "Name: User 9" in await kept(node, "user009")
    await node.service.tenants.update_tenant(operator, None, public_fields="status")
    answer = await node.finger("user008")
    assert "Login: user008" in answer and "User 8" not in answer
    await node.service.tenants.update_tenant(operator, "acme", add_domains=["acme.test"])
    assert "Name: User 9" not in await node.finger("user009")  # still the default's fields


async def test_a_change_by_another_process(node: CountingNode, operator: Context,
                                           other_process: FingerplatService) -> None:
    assert "Status: reading" in await kept(node, "user001")
    await other_process.users.set_status(operator, None, "user001", "elsewhere")

    async def seen() -> bool:  # SQLite: the next answer; PostgreSQL: once NOTIFY arrives
        return "Status: elsewhere" in await node.finger("user001")

    await until(seen)


async def test_answers_asked_after_a_change_are_kept_compact_again(
        node: CountingNode, operator: Context) -> None:
    # On SQLite the commit dropped everything; on PostgreSQL only user010's answer.
    await node.service.users.set_status(operator, None, "user010", "busy")
    assert "Status: busy" in await node.finger("user010")
    assert "Status: busy" in await kept(node, "user010")
    assert "Name: User 11" in await node.finger("user011")
    assert "Name: User 11" in await kept(node, "user011")
    cache = node.service.read_cache
    assert cache is not None and cache.compact_answers() >= 2
    assert cache.bytes <= cache.max_bytes
