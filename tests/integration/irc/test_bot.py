"""The IRC bot against a real ngircd, on SQLite and PostgreSQL (the ``service`` fixture)."""

from __future__ import annotations

import asyncio

from fingerplat.adapters.irc import start_irc_bots
from fingerplat.config import IrcConfig
from fingerplat.domain.expiry import Expiry
from fingerplat.domain.model import ChangeEvent, Context
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService
from tests.integration.irc.conftest import FAST
from tests.integration.irc.ircd import IrcPeer, Ngircd, text_of


async def make_acme(service: FingerplatService, operator: Context) -> None:
    await service.tenants.create_tenant(operator, "acme", name="Acme")
    await service.tenants.create_tenant(operator, "other", name="Other")
    await service.users.add_user(operator, "acme", "alice", full_name="Alice Liddell")
    await service.users.set_status(operator, "acme", "alice", "in the lab")
    await service.users.add_user(operator, "acme", "bob", hidden=True)
    await service.users.set_status(operator, "acme", "bob", "secret plans")
    await service.users.add_user(operator, "acme", "carol")
    await service.users.add_user(operator, "other", "dave")


def bot_config(ngircd: Ngircd, **overrides: object) -> IrcConfig:
    values: dict[str, object] = {
        "server": "127.0.0.1", "port": ngircd.port, "tls": False, "nick": "fingerbot",
        "channels": ["#acme"], "tenant": "acme",
    }
    values.update(overrides)
    return IrcConfig(**values)


async def joined_peer(peers: list[IrcPeer], ngircd: Ngircd, nick: str = "tester") -> IrcPeer:
    peer = IrcPeer(nick)
    peers.append(peer)
    await peer.connect(ngircd.port)
    await peer.join("#acme")
    return peer


async def bot_in_channel(peer: IrcPeer, bot: str = "fingerbot") -> None:
    """The bot is in #acme: it was there when the peer joined (NAMES), or joined later."""
    await peer.wait_for(
        lambda line: (f" 353 {peer.nick} " in line and bot in text_of(line).replace("@", " ")
                      .split())
        or (line.startswith(f":{bot}!") and line.endswith("JOIN :#acme")))


async def round_trip(peer: IrcPeer, bot: str = "fingerbot") -> None:
    """Ask the bot and wait for the answer: it has handled everything the server sent before."""
    await peer.privmsg(bot, "finger carol")
    await peer.wait_for(is_privmsg(bot, peer.nick, "carol: (no status)"))


def is_privmsg(sender: str, target: str, text: str):
    def match(line: str) -> bool:
        return (line.startswith(f":{sender}!") and f" PRIVMSG {target} :" in line
                and text_of(line) == text)
    return match


async def test_answers_private_and_channel_queries(
    service: FingerplatService, operator: Context, ngircd: Ngircd, peers: list[IrcPeer]
) -> None:
    await make_acme(service, operator)
    peer = await joined_peer(peers, ngircd)
    metrics = Metrics()
    bots = await start_irc_bots(service, [bot_config(ngircd)], metrics=metrics, timing=FAST)
    try:
        assert bots.name == "irc"
        await peer.wait_for(lambda line: line.startswith(":fingerbot!")
                            and line.endswith("JOIN :#acme"))
        assert bots.addresses == [f"irc://127.0.0.1:{ngircd.port} as fingerbot in #acme"]

        await peer.privmsg("fingerbot", "alice")
        await peer.wait_for(is_privmsg("fingerbot", "tester", "alice: in the lab"))
        await peer.privmsg("fingerbot", "finger ALICE")
        await peer.wait_for(is_privmsg("fingerbot", "tester", "alice: in the lab"))
        await peer.privmsg("fingerbot", "finger carol")
        await peer.wait_for(is_privmsg("fingerbot", "tester", "carol: (no status)"))
        # Hidden and unknown users get the same answer.
        await peer.privmsg("fingerbot", "finger bob")
        await peer.wait_for(is_privmsg("fingerbot", "tester", "No such user: bob"))
        await peer.privmsg("fingerbot", "finger nobody")
        await peer.wait_for(is_privmsg("fingerbot", "tester", "No such user: nobody"))
        # A user of another tenant is not visible through acme's bot.
        await peer.privmsg("fingerbot", "dave")
        await peer.wait_for(is_privmsg("fingerbot", "tester", "No such user: dave"))
        # A name that breaks the rules gets a short error naming the rule.
        await peer.privmsg("fingerbot", "finger 9lives!")
        line = await peer.wait_for(lambda line: line.startswith(":fingerbot!")
                                   and "invalid username" in line)
        assert "'9lives!'" in text_of(line)
        await peer.privmsg("fingerbot", "what is this")
        await peer.wait_for(lambda line: line.startswith(":fingerbot!")
                            and text_of(line).startswith("usage: finger <user>"))

        # In the channel only !finger is answered, and the answer goes to the channel.
        mark = len(peer.lines)
        await peer.privmsg("#acme", "alice, are you there?")
        await peer.privmsg("#acme", "!finger alice")
        await peer.wait_for(is_privmsg("fingerbot", "#acme", "alice: in the lab"), start=mark)
        assert len(peer.privmsgs_from("fingerbot", mark)) == 1

        # Counted as IRC requests.
        served = metrics.registry.get_sample_value("fingerplat_requests_total",
                                                   {"adapter": "irc"})
        assert served is not None and served >= 7
    finally:
        await bots.close()
        await bots.drain(5)
    await peer.wait_for(lambda line: line.startswith(":fingerbot!") and " QUIT " in line)


async def test_announces_status_changes_of_its_tenant_only(
    service: FingerplatService, operator: Context, ngircd: Ngircd, peers: list[IrcPeer]
) -> None:
    await make_acme(service, operator)
    peer = await joined_peer(peers, ngircd)
    bots = await start_irc_bots(service, [bot_config(ngircd)], metrics=Metrics(), timing=FAST)
    try:
        await peer.wait_for(lambda line: line.startswith(":fingerbot!")
                            and line.endswith("JOIN :#acme"))
        await round_trip(peer)  # the bot has seen its own JOIN, so it knows it is in #acme
        mark = len(peer.lines)
        await service.users.set_status(operator, "acme", "bob", "hidden users stay hidden")
        await service.users.set_status(operator, "other", "dave", "not acme's business")
        await service.users.set_status(operator, "acme", "alice", "gone fishing")
        await peer.wait_for(is_privmsg("fingerbot", "#acme", "alice is now: gone fishing"),
                            start=mark)
        await service.users.clear_status(operator, "acme", "alice")
        await peer.wait_for(is_privmsg("fingerbot", "#acme", "alice cleared their status"),
                            start=mark)
        said = [text_of(line) for line in peer.privmsgs_from("fingerbot", mark)]
        assert said == ["alice is now: gone fishing", "alice cleared their status"]

        # Another node's event too long for NOTIFY arrives without status and
        # "hidden" flag: the bot announces the current public view, and still
        # says nothing about a hidden user.
        await service.users.set_status(operator, "acme", "alice", "long story")
        await peer.wait_for(is_privmsg("fingerbot", "#acme", "alice is now: long story"),
                            start=mark)
        mark = len(peer.lines)
        acme = await service.public.resolve_tenant("acme")
        for name in ("bob", "alice"):
            await service.events.publish(ChangeEvent(
                "status", acme.id, "acme", name, status=None, data={"truncated": True},
                remote=True))
        await peer.wait_for(is_privmsg("fingerbot", "#acme", "alice is now: long story"),
                            start=mark)
        await round_trip(peer)
        said = [text_of(line) for line in peer.privmsgs_from("fingerbot", mark)
                if " PRIVMSG #acme " in line]
        assert said == ["alice is now: long story"]
    finally:
        await bots.close()
        await bots.drain(5)


async def test_startup_does_not_wait_for_a_dead_server(
    service: FingerplatService, ngircd: Ngircd
) -> None:
    ngircd.kill()
    bots = await asyncio.wait_for(
        start_irc_bots(service, [bot_config(ngircd)], metrics=Metrics(), timing=FAST), 2)
    try:
        assert bots.addresses == [f"irc://127.0.0.1:{ngircd.port} as fingerbot in #acme"]
        assert not bots.bots[0].connected
    finally:
        await bots.close()
        await asyncio.wait_for(bots.drain(5), 6)


async def test_public_fields_and_expiry_reach_irc(
    service: FingerplatService, operator: Context, ngircd: Ngircd, peers: list[IrcPeer]
) -> None:
    await make_acme(service, operator)
    peer = await joined_peer(peers, ngircd)
    bots = await start_irc_bots(service, [bot_config(ngircd)], metrics=Metrics(), timing=FAST)
    try:
        await bot_in_channel(peer)
        await service.users.set_status(
            operator, "acme", "carol", "coffee", expires=Expiry.after(0.5))
        await peer.wait_for(is_privmsg("fingerbot", "#acme", "carol is now: coffee"))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while True:  # the expiry needs no write: the next lookup after it says so
            start = len(peer.lines)
            await peer.privmsg("fingerbot", "carol")
            line = await peer.wait_for(lambda line: line.startswith(":fingerbot!")
                                       and "carol:" in line, start=start)
            if text_of(line) == "carol: (no status)":
                break
            assert loop.time() < deadline
            await asyncio.sleep(0.2)

        await service.tenants.update_tenant(operator, "acme", public_fields="full_name,plan")
        await peer.privmsg("fingerbot", "alice")
        await peer.wait_for(is_privmsg("fingerbot", "tester", "alice: (status not public)"))
        await service.users.set_status(operator, "acme", "alice", "secret meeting")
        start = len(peer.lines)
        await peer.privmsg("fingerbot", "alice")  # answered after the change was handled
        await peer.wait_for(is_privmsg("fingerbot", "tester", "alice: (status not public)"),
                            start=start)
        assert not any("secret meeting" in line for line in peer.lines)
    finally:
        await bots.close()
