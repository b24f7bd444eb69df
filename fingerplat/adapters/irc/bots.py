"""``start_irc_bots``: the IRC adapter's entry point for the composition root.

It checks the ``[[irc]]`` entries (a nick or channel the IRC protocol cannot
carry is refused at start, naming the key), starts one :class:`IrcBot` per
entry and returns at once: connecting happens in the background, so an IRC
server that is down never delays or breaks ``fingerplat serve``.
"""

from __future__ import annotations

import asyncio
import logging

from fingerplat.adapters.irc.bot import IrcBot, IrcTiming, ShouldRun
from fingerplat.adapters.irc.text import CHANNEL_RE, NICK_RE
from fingerplat.config import Config, IrcConfig
from fingerplat.domain.errors import InvalidInput
from fingerplat.metrics import Metrics
from fingerplat.service import FingerplatService

log = logging.getLogger("fingerplat.irc")


class IrcBots:
    """All configured bots, seen by the runtime as one listener named ``irc``."""

    name = "irc"

    def __init__(self, bots: list[IrcBot]) -> None:
        self.bots = bots

    @property
    def addresses(self) -> list[str]:
        return [bot.address for bot in self.bots]

    def reconfigure(self, config: Config) -> None:
        """SIGHUP: take the freshly read password of bots whose settings are unchanged.

        ``password_file`` and ``password_env`` are read again on every reload,
        so a rotated secret is used from the bot's next connection on without
        a restart. Any other change to a bot needs a restart (the runtime says
        so); such a bot keeps what it has.
        """
        if len(config.irc) != len(self.bots):
            return
        for index, (bot, new) in enumerate(zip(self.bots, config.irc, strict=True)):
            if new.model_dump() != bot.cfg.model_dump() or new == bot.cfg:
                continue
            try:
                check_irc_config(new, index)
            except InvalidInput as error:
                log.warning("irc: reload: keeping the old password: %s", error)
                continue
            bot.cfg = new

    async def close(self) -> None:
        for bot in self.bots:
            bot.close()

    async def drain(self, timeout: float) -> None:
        await asyncio.gather(*(bot.drain(timeout) for bot in self.bots),
                             return_exceptions=True)


def check_irc_config(cfg: IrcConfig, index: int) -> None:
    """Refuse what cannot go on the wire: control characters, spaces, commas in names."""
    where = f"irc[{index}]"
    if not cfg.server.strip() or any(ch.isspace() or ord(ch) < 0x20 for ch in cfg.server):
        raise InvalidInput(f"{where}.server: {cfg.server!r} is not a host name or address")
    if not NICK_RE.fullmatch(cfg.nick):
        raise InvalidInput(
            f"{where}.nick: {cfg.nick!r} is not an IRC nick (1-30 characters: letters, digits "
            "and []\\`_^{|}-, not starting with a digit or '-')"
        )
    for channel in cfg.channels:
        if not CHANNEL_RE.fullmatch(channel):
            raise InvalidInput(
                f"{where}.channels: {channel!r} is not an IRC channel (it starts with #, &, + "
                "or ! and has no spaces, commas or control characters)"
            )
    source = ("password_file" if cfg.password_file is not None
              else "password_env" if cfg.password_env is not None else "password")
    secret = cfg.server_password
    if secret is not None and any(ch in secret for ch in "\r\n\0"):
        raise InvalidInput(f"{where}.{source} must not contain line breaks or NUL")


async def start_irc_bots(service: FingerplatService, bots: list[IrcConfig], *,
                         metrics: Metrics, timing: IrcTiming | None = None,
                         should_run: ShouldRun | None = None) -> IrcBots:
    """Start every configured bot in the background and return at once."""
    for index, cfg in enumerate(bots):
        check_irc_config(cfg, index)
    running = [IrcBot(service, cfg, metrics=metrics, timing=timing, should_run=should_run)
               for cfg in bots]
    for bot in running:
        bot.start()
    return IrcBots(running)
