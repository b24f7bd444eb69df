"""``serve``'s composition root starts the configured bots (both databases)."""

from __future__ import annotations

import asyncio

from fingerplat.config import from_mapping
from fingerplat.domain.model import Context
from fingerplat.server.runtime import Runtime
from tests.integration.irc.ircd import IrcPeer, Ngircd
from tests.integration.irc.test_bot import bot_in_channel, is_privmsg, joined_peer, make_acme


def config_for(ngircd: Ngircd, database_url: str):
    return from_mapping({
        "database_url": database_url,
        "finger": {"listen": ["127.0.0.1:0"]},
        "setter": {"listen": []},
        "web": {"listen": []},
        "irc": [{"server": "127.0.0.1", "port": ngircd.port, "tls": False,
                 "nick": "fingerbot", "channels": ["#acme"], "tenant": "acme"}],
    })


async def test_serve_runs_the_configured_bot(
    database_url: str, operator: Context, ngircd: Ngircd, peers: list[IrcPeer]
) -> None:
    said: list[str] = []
    runtime = Runtime(config_for(ngircd, database_url), database_url, announce=said.append)
    await runtime.start()
    try:
        assert runtime.service is not None
        assert f"irc listening on irc://127.0.0.1:{ngircd.port} as fingerbot in #acme" in said
        await make_acme(runtime.service, operator)
        peer = await joined_peer(peers, ngircd)
        await bot_in_channel(peer)
        await peer.privmsg("fingerbot", "finger alice")
        await peer.wait_for(is_privmsg("fingerbot", "tester", "alice: in the lab"))
        mark = len(peer.lines)
        await runtime.service.users.set_status(operator, "acme", "alice", "via serve")
        await peer.wait_for(is_privmsg("fingerbot", "#acme", "alice is now: via serve"),
                            start=mark)
    finally:
        await asyncio.wait_for(runtime.stop(), 15)
    await peer.wait_for(lambda line: line.startswith(":fingerbot!") and " QUIT " in line)


async def test_serve_starts_while_the_irc_server_is_down(
    database_url: str, ngircd: Ngircd
) -> None:
    ngircd.kill()
    said: list[str] = []
    runtime = Runtime(config_for(ngircd, database_url), database_url, announce=said.append)
    try:
        await asyncio.wait_for(runtime.start(), 10)
        assert any(line.startswith("irc listening on irc://") for line in said)
        assert any(line.startswith("finger listening on") for line in said)
    finally:
        await asyncio.wait_for(runtime.stop(), 15)
