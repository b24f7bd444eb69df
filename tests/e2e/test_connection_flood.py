"""Issue 12 item 4 against a real ``serve``: one address cannot take a listener.

One address opens many silent connections to the setter, the finger and
the web listener of a running ``fingerplat serve``; past its share of
``max_connections`` every further connection reads the listener's refusal
(one line, a 503 on the web), never a reset, and another address is still
served on each.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from fingerplat.domain.model import Context, TokenScope
from fingerplat.service import FingerplatService
from tests.e2e.ops_support import (  # noqa: F401 - nodes_fixture provides "nodes"
    PORTS_ZERO,
    Node,
    node_env,
    nodes_fixture,
    write_config,
)

TIMEOUT = 10.0
FLOOD = 60  # the setter's share is 50 (a quarter of its default 200), the others' 25


async def connect(address: tuple[str, int], source: str) -> tuple[asyncio.StreamReader,
                                                                  asyncio.StreamWriter]:
    return await asyncio.wait_for(asyncio.open_connection(*address, local_addr=(source, 0)),
                                  TIMEOUT)


async def flood(address: tuple[str, int], count: int) -> tuple[list[asyncio.StreamWriter],
                                                                list[bytes]]:
    """``count`` silent connections from 127.0.0.1; what the refused ones read, in full."""
    opened = [await connect(address, "127.0.0.1") for _ in range(count)]

    async def answer(reader: asyncio.StreamReader) -> bytes | None:
        try:
            return await asyncio.wait_for(reader.read(), 2.0)
        except TimeoutError:
            return None  # held open: silent and waiting, as the flooder wants
        except ConnectionResetError:
            return b"<reset>"

    answers = await asyncio.gather(*(answer(reader) for reader, _ in opened))
    return [writer for _, writer in opened], [a for a in answers if a is not None]


async def test_one_address_floods_every_listener_and_another_is_still_served(
    service: FingerplatService, operator: Context, database_url: str, tmp_path: Path, nodes
) -> None:
    await service.users.add_user(operator, None, "alice", full_name="Alice Liddell")
    token = (await service.credentials.create_token(
        operator, TokenScope.USER, username="alice")).secret
    config = write_config(tmp_path / "flood.toml", """
[finger]
max_connections = 100
idle_timeout = 60
[web]
max_connections = 100
""")
    node: Node = await nodes(node_env(tmp_path, database_url), "--config", config, *PORTS_ZERO)
    held: list[asyncio.StreamWriter] = []
    try:
        writers, refused = await flood(node.address("setter"), FLOOD)
        held += writers
        assert refused == [b"-ERR too many connections from your address, "
                           b"please try again later\r\n"] * (FLOOD - 50)
        reader, writer = await connect(node.address("setter"), "127.0.0.2")
        writer.write(f"AUTH {token}\r\nSET alice still served\r\nQUIT\r\n".encode())
        assert b"+OK status of alice set\r\n" in await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()

        writers, refused = await flood(node.address("finger"), 30)
        held += writers
        assert refused == [b"finger: too many connections from your address, "
                           b"please try again later\r\n"] * 5
        reader, writer = await connect(node.address("finger"), "127.0.0.2")
        writer.write(b"alice\r\n")
        assert b"still served" in await asyncio.wait_for(reader.read(), TIMEOUT)
        writer.close()

        writers, refused = await flood(node.address("web"), 30)
        held += writers
        assert len(refused) == 5
        assert all(a.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") for a in refused)
        reader, writer = await connect(node.address("web"), "127.0.0.2")
        writer.write(b"GET /~alice HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), TIMEOUT)
        assert answer.startswith(b"HTTP/1.1 200") and b"still served" in answer
        writer.close()
    finally:
        for writer in held:
            writer.close()
    assert await node.stop() == 0
