"""Two nodes of serve's runtime on one database: a change through one is answered by the other.

Each node is a :class:`~fingerplat.server.runtime.Runtime` of its own (engine,
read cache, change events), as two ``fingerplat serve`` processes are; they
share only the database. What needs real processes (kill -9, the IRC bot's
takeover) is in tests/e2e/test_operations_nodes.py; how soon a change shows
is a figure of bench/crossnode.py, not asserted here.
"""

from __future__ import annotations

import asyncio

from fingerplat.domain.model import Context, TokenScope
from fingerplat.service import FingerplatService
from tests.support.finger_client import finger_at
from tests.support.polling import until
from tests.support.runtime import StartNode

TIMEOUT = 10.0
CHANGES = 40


async def test_every_status_set_through_one_node_is_answered_by_the_other(
    service: FingerplatService, operator: Context, database_url: str,
    runtime_nodes: StartNode,
) -> None:
    await service.users.add_user(operator, None, "alice", full_name="Alice Liddell")
    token = (await service.credentials.create_token(
        operator, TokenScope.USER, username="alice")).secret
    fast = {"rate_limit": 100_000}  # polling finger must not meet the rate limit
    node_a = await runtime_nodes(database_url, finger=fast)
    node_b = await runtime_nodes(database_url, finger=fast)

    reader, writer = await asyncio.open_connection(*node_a.address("setter"))
    try:
        async def ask(line: str) -> str:
            writer.write(line.encode() + b"\r\n")
            return (await asyncio.wait_for(reader.readline(), TIMEOUT)).decode().rstrip()

        assert (await ask(f"AUTH {token}")).startswith("+OK")
        # Every change, not one: a cache on the finger path must be invalidated
        # across nodes each time, never by a TTL.
        for n in range(CHANGES):
            status = f"change number {n}"
            assert await ask(f"SET alice {status}") == "+OK status of alice set"

            async def shown(status: str = status) -> bool:
                return f"Status: {status}" in await finger_at(node_b.address("finger"), "alice")

            await until(shown, f"node B answers {status!r}", timeout=TIMEOUT)
    finally:
        writer.close()
