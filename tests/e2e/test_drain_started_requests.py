"""SIGTERM on a real ``serve``: requests already started are answered (SPEC section 11).

A finger query or a setter command of which the server has received a
part when SIGTERM comes is still answered once its client sends the rest
(within the drain deadline); connections that have sent nothing are closed
at once; the process exits 0. Issue 12 item 18: the partial query used to
be cut without an answer.
"""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import aiohttp

from fingerplat.domain.model import Context, TokenScope
from fingerplat.service import FingerplatService
from tests.e2e.ops_support import (  # noqa: F401 - nodes_fixture provides "nodes"
    PORTS_ZERO,
    Node,
    SetterClient,
    node_env,
    nodes_fixture,
)

TIMEOUT = 10.0


async def open_finger_connections(node: Node) -> int:
    """What the node's /metrics says about open finger connections."""
    host, port = node.address("web")
    async with aiohttp.ClientSession() as http, http.get(f"http://{host}:{port}/metrics") as r:
        text = await r.text()
    found = re.search(r'^fingerplat_open_connections\{adapter="finger"\} (\S+)$', text, re.M)
    return int(float(found.group(1))) if found else 0


async def test_sigterm_answers_a_partly_received_finger_query_and_setter_command(
    service: FingerplatService, operator: Context, database_url: str, tmp_path: Path, nodes
) -> None:
    await service.users.add_user(operator, None, "alice", full_name="Alice Liddell")
    token = (await service.credentials.create_token(
        operator, TokenScope.USER, username="alice")).secret
    node: Node = await nodes(node_env(tmp_path, database_url), *PORTS_ZERO)
    # A finger client that sent half its query, and one that sent nothing.
    started_reader, started = await asyncio.open_connection(*node.address("finger"))
    started.write(b"ali")
    idle_reader, idle = await asyncio.open_connection(*node.address("finger"))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TIMEOUT
    while await open_finger_connections(node) < 2:
        assert loop.time() < deadline, "the finger connections were never seen open"
        await asyncio.sleep(0.05)
    # A setter session that sent half a command (in the same packet as its AUTH,
    # so the server holds it once AUTH is answered).
    setter = await SetterClient.connect(node.address("setter"))
    setter.writer.write(f"AUTH {token}\r\nSET alice half".encode())
    assert (await setter.reply()).startswith("+OK authenticated")

    node.process.send_signal(signal.SIGTERM)
    await node.wait_line(lambda line: line.startswith("stopping"), stream="out")
    assert await asyncio.wait_for(idle_reader.read(), TIMEOUT) == b""  # nothing asked

    started.write(b"ce\r\n")
    answer = await asyncio.wait_for(started_reader.read(), TIMEOUT)
    assert b"Login: alice" in answer and b"Alice Liddell" in answer
    setter.writer.write(b" done\r\n")
    assert await setter.reply() == "+OK status of alice set"
    assert await asyncio.wait_for(setter.reader.read(), TIMEOUT) == b""

    assert await node.wait(20) == 0
    assert node.out[-1] == "stopped"
    user = await service.public.public_user(await service.public.resolve_tenant(None), "alice")
    assert user is not None and user.status == "half done"
    assert not [line for line in node.err if "Traceback" in line]
    for writer in (started, idle):
        writer.close()
    setter.close()
