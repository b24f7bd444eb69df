"""The advisory lock key of an IRC bot: what every node must agree on."""

from __future__ import annotations

from fingerplat.config import IrcConfig
from fingerplat.server.leadership import bot_lock_key


def test_lock_key_is_stable_and_names_the_bot():
    bot = IrcConfig(server="irc.example.org", port=6697, nick="fingerbot", tenant="default")
    # Fixed across processes and releases: nodes of different versions must agree.
    assert bot_lock_key(bot) == bot_lock_key(IrcConfig(server="IRC.example.org ",
                                                       nick="FingerBot"))
    # The value itself is pinned: changing the derivation would let two nodes
    # of different releases run the same bot during a rolling upgrade.
    assert bot_lock_key(bot) == -7878463410924697013
    different = [
        IrcConfig(server="irc.example.net", nick="fingerbot"),
        IrcConfig(server="irc.example.org", port=6667, nick="fingerbot"),
        IrcConfig(server="irc.example.org", nick="otherbot"),
        IrcConfig(server="irc.example.org", nick="fingerbot", tenant="acme"),
    ]
    assert len({bot_lock_key(bot), *map(bot_lock_key, different)}) == 5
