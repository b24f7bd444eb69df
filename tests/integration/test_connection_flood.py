"""Issue 12 item 4 with serve's runtime: one address cannot take a listener.

One address opens many silent connections to the setter, the finger and
the web listener that one ``[finger]``/``[web]`` configuration starts; past
its share of ``max_connections`` every further connection reads the
listener's refusal (one line, a 503 on the web), never a reset, and another
address is still served on each. The connections within the share are held,
not refused late: each is answered once it finally sends its request.
(tests/integration/test_finger_flood.py, test_setter_limits.py and
web/test_connection_caps.py show each listener's limits on its own.)
"""

from __future__ import annotations

import asyncio

from fingerplat.domain.model import Context, TokenScope
from fingerplat.service import FingerplatService
from tests.support.runtime import Node, StartNode

TIMEOUT = 10.0
FLOOD = 60  # the setter's share is 50 (a quarter of its default 200), the others' 25
Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def connect(address: tuple[str, int], source: str) -> Conn:
    return await asyncio.wait_for(asyncio.open_connection(*address, local_addr=(source, 0)),
                                  TIMEOUT)


async def flood(address: tuple[str, int], count: int, share: int) -> tuple[
        list[tuple[Conn, asyncio.Task[bytes]]], list[bytes]]:
    """``count`` silent connections from 127.0.0.1: the held ones, and what the others read.

    The refusals come at once, so the wait is for exactly ``count - share`` of
    them (bounded), never a pause to see whether anything else comes: that the
    others are held shows when they are answered later (:func:`served_late`).
    """
    opened = [await connect(address, "127.0.0.1") for _ in range(count)]

    async def answer(reader: asyncio.StreamReader) -> bytes:
        try:
            return await reader.read()
        except ConnectionResetError:
            return b"<reset>"

    reads = [asyncio.create_task(answer(reader)) for reader, _ in opened]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while sum(read.done() for read in reads) < count - share:
        remaining = deadline - loop.time()
        assert remaining > 0, f"{sum(r.done() for r in reads)} of {count - share} refusals"
        await asyncio.wait([r for r in reads if not r.done()], timeout=remaining,
                           return_when=asyncio.FIRST_COMPLETED)
    refused = [read.result() for read in reads if read.done()]
    held = [(conn, read) for conn, read in zip(opened, reads, strict=True) if not read.done()]
    return held, refused


async def served_late(held: list[tuple[Conn, asyncio.Task[bytes]]], request: bytes) -> list[bytes]:
    """Each held connection sends ``request`` now; what each one reads to the end."""
    for (_reader, writer), _read in held:
        writer.write(request)
    return list(await asyncio.wait_for(asyncio.gather(*(read for _conn, read in held)),
                                       TIMEOUT))


async def ask_from(node: Node, kind: str, request: bytes) -> bytes:
    """``request`` from another address (127.0.0.2), read to the end."""
    reader, writer = await connect(node.address(kind), "127.0.0.2")
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(), TIMEOUT)
    finally:
        writer.close()


async def test_one_address_floods_every_listener_and_another_is_still_served(
    service: FingerplatService, operator: Context, database_url: str,
    runtime_nodes: StartNode,
) -> None:
    await service.users.add_user(operator, None, "alice", full_name="Alice Liddell")
    token = (await service.credentials.create_token(
        operator, TokenScope.USER, username="alice")).secret
    node = await runtime_nodes(database_url, finger={"max_connections": 100, "idle_timeout": 60},
                               web={"max_connections": 100})
    held: list[tuple[Conn, asyncio.Task[bytes]]] = []
    try:
        setters, refused = await flood(node.address("setter"), FLOOD, 50)
        held += setters
        assert refused == [b"-ERR too many connections from your address, "
                           b"please try again later\r\n"] * (FLOOD - 50)
        answer = await ask_from(node, "setter",
                                f"AUTH {token}\r\nSET alice still served\r\nQUIT\r\n".encode())
        assert b"+OK status of alice set\r\n" in answer

        fingers, refused = await flood(node.address("finger"), 30, 25)
        held += fingers
        assert refused == [b"finger: too many connections from your address, "
                           b"please try again later\r\n"] * 5
        assert b"still served" in await ask_from(node, "finger", b"alice\r\n")

        pages, refused = await flood(node.address("web"), 30, 25)
        held += pages
        assert len(refused) == 5
        assert all(a.startswith(b"HTTP/1.1 503 Service Unavailable\r\n") for a in refused)
        answer = await ask_from(
            node, "web", b"GET /~alice HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200") and b"still served" in answer

        # What was held all along is served once it asks.
        assert await served_late(setters, b"QUIT\r\n") == [b"+OK bye\r\n"] * 50
        assert all(b"Login: alice" in a for a in await served_late(fingers, b"alice\r\n"))
        answers = await served_late(
            pages, b"GET /~alice HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        assert all(a.startswith(b"HTTP/1.1 200") for a in answers), answers[0][:100]
    finally:
        for (_reader, writer), read in held:
            read.cancel()
            writer.close()
