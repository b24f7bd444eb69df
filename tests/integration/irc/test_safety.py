"""Nothing stored can inject an IRC command, and a flood is throttled, not relayed.

Against a real ngircd on both databases. "Proof" here is what a second client
on the server sees: exactly one PRIVMSG line per answer, nothing in the
channel, and the bot still connected and answering afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses

from fingerplat.adapters.irc import start_irc_bots
from fingerplat.domain.model import ChangeEvent, Context
from fingerplat.metrics import Metrics
from fingerplat.repository.uow import UnitOfWork
from fingerplat.service import FingerplatService
from tests.integration.irc.conftest import FAST
from tests.integration.irc.ircd import IrcPeer, Ngircd, text_of
from tests.integration.irc.test_bot import bot_config, is_privmsg, joined_peer, make_acme
from tests.integration.irc.test_resilience import wait_until

# The most hostile status the rules accept: a TAB, protocol look-alikes, and
# far more UTF-8 bytes than one IRC line can carry (bidi overrides are refused).
HOSTILE_BUT_VALID = "evil\t:x PRIVMSG #acme :pwned " + "\U0001f600" * 250
# What an older release or a raw import could have left in a row.
LEGACY_ROW = "hi\r\nPRIVMSG #acme :pwned\r\nQUIT :bye\x01\x03\x1b[31m\u2028\x85\u202eend"


async def sentinel(peer: IrcPeer, bot: str = "fingerbot") -> None:
    """Ask once more and wait for the answer: everything sent before it has arrived."""
    await peer.privmsg(bot, "finger carol")
    await peer.wait_for(is_privmsg(bot, peer.nick, "carol: (no status)"))


async def test_stored_text_cannot_inject_commands(
    service: FingerplatService, operator: Context, ngircd: Ngircd, peers: list[IrcPeer]
) -> None:
    await make_acme(service, operator)
    alice = await service.users.set_status(operator, "acme", "alice", HOSTILE_BUT_VALID)
    await service.users.edit_user(operator, "acme", "bob", hidden=False)
    bob = await service.users.get_user(operator, "acme", "bob")
    async with UnitOfWork(service.engine) as repo:  # a legacy row, bypassing the rules
        await repo.set_status(bob.id, LEGACY_ROW, service.clock(), "legacy", "import")
    watcher = await joined_peer(peers, ngircd, "watcher")
    peer = await joined_peer(peers, ngircd)
    bots = await start_irc_bots(service, [bot_config(ngircd)], metrics=Metrics(), timing=FAST)
    try:
        await peer.wait_for(lambda line: line.startswith(":fingerbot!")
                            and line.endswith("JOIN :#acme"))
        mark, watch_mark = len(peer.lines), len(watcher.lines)

        await peer.privmsg("fingerbot", "alice")
        await peer.privmsg("fingerbot", "bob")
        await sentinel(peer)
        answers = peer.privmsgs_from("fingerbot", mark)
        assert len(answers) == 3
        first, second = answers[0], answers[1]
        # Cut to fit one line of 512 bytes with CRLF; no TAB.
        assert len(first.encode()) + 2 <= 512
        assert text_of(first).startswith("alice: evil :x PRIVMSG #acme :pwned \U0001f600")
        assert text_of(first).endswith("…")
        assert alice.status == HOSTILE_BUT_VALID  # stored as given; only the output is cut
        # Line breaks and controls became visible text inside the one line.
        assert text_of(second) == (
            "bob: hi^M^JPRIVMSG #acme :pwned^M^JQUIT :bye^A^C^[[31m\\u2028\\u0085\\u202eend"
        )
        # The channel saw nothing, and the bot did not quit.
        assert not any(" PRIVMSG #acme " in line or " QUIT " in line
                       for line in watcher.lines[watch_mark:])
        assert not any(" QUIT " in line for line in peer.lines[mark:])

        # An announcement carrying such text (another node's event, say) is one line too.
        acme = await service.public.resolve_tenant("acme")
        await service.events.publish(ChangeEvent(
            "status", acme.id, "acme", "alice", status="x\r\nQUIT :gone\r\nJOIN #evil",
            data={"hidden": False}))
        line = await watcher.wait_for(lambda line: line.startswith(":fingerbot!")
                                      and " PRIVMSG #acme " in line, start=watch_mark)
        assert text_of(line) == "alice is now: x^M^JQUIT :gone^M^JJOIN #evil"
        await sentinel(peer)
        assert bots.bots[0].connected
        assert not any("#evil" in ln and " JOIN " in ln for ln in watcher.lines)
    finally:
        await bots.close()
        await bots.drain(5)


async def test_a_flood_of_changes_is_throttled_and_dropped_not_relayed(
    service: FingerplatService, operator: Context, ngircd: Ngircd, peers: list[IrcPeer]
) -> None:
    await make_acme(service, operator)
    peer = await joined_peer(peers, ngircd)
    metrics = Metrics()
    timing = dataclasses.replace(FAST, rate=2.0, burst=2, queue_size=5)
    bots = await start_irc_bots(service, [bot_config(ngircd)], metrics=metrics, timing=timing)
    try:
        await peer.wait_for(lambda line: line.startswith(":fingerbot!")
                            and line.endswith("JOIN :#acme"))
        await sentinel(peer)  # the bot has seen its own JOIN, so it knows it is in #acme
        mark = len(peer.lines)
        for n in range(40):
            await service.users.set_status(operator, "acme", "alice", f"flood {n}")
        await wait_until(lambda: len(bots.bots[0].queue) == 0, timeout=15,
                         what="queue drained")
        await sentinel(peer)
        said = [text_of(line) for line in peer.privmsgs_from("fingerbot", mark)
                if " PRIVMSG #acme " in line]
        assert 0 < len(said) < 40
        numbers = [int(text.rsplit(" ", 1)[1]) for text in said]
        assert numbers == sorted(numbers)  # what got through came in order
        assert all(text.startswith("alice is now: flood ") for text in said)
        dropped = metrics.registry.get_sample_value(
            "fingerplat_refused_connections_total",
            {"adapter": "irc", "reason": "output_queue_full"})
        assert dropped is not None and dropped >= 40 - len(said) - 1
        assert bots.bots[0].connected
    finally:
        await bots.close()
        await bots.drain(5)


async def test_close_stops_answering_and_drain_quits(
    service: FingerplatService, operator: Context, ngircd: Ngircd, peers: list[IrcPeer]
) -> None:
    await make_acme(service, operator)
    peer = await joined_peer(peers, ngircd)
    bots = await start_irc_bots(service, [bot_config(ngircd)], metrics=Metrics(), timing=FAST)
    await peer.wait_for(lambda line: line.startswith(":fingerbot!")
                        and line.endswith("JOIN :#acme"))
    await bots.close()
    mark = len(peer.lines)
    await service.users.set_status(operator, "acme", "alice", "after close")
    await peer.privmsg("fingerbot", "alice")
    await asyncio.sleep(0.5)
    await asyncio.wait_for(bots.drain(5), 6)
    await peer.wait_for(lambda line: line.startswith(":fingerbot!") and " QUIT " in line,
                        start=mark)
    assert peer.privmsgs_from("fingerbot", mark) == []
