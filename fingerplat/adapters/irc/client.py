"""The pydle client one bot drives: protocol, PING, TLS and nick fallback come from pydle.

This class only turns pydle's callbacks into calls on its owner (a
:class:`BotOwner`: in practice :class:`~fingerplat.adapters.irc.bot.IrcBot`,
which imports this module, so this module names only the protocol and the two
do not import each other) and disables pydle's own reconnect logic, because
the bot's supervisor reconnects with jittered back-off and a fresh client
each time.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import pydle

from fingerplat.config import IrcConfig

log = logging.getLogger("fingerplat.irc")

# TLS, ISUPPORT (channel prefixes, case mapping, NICKLEN) and RFC 1459. No
# CTCP replies (they would bypass our throttle) and no IRCv3 negotiation.
_Base: Any = pydle.featurize(
    pydle.features.TLSSupport, pydle.features.ISUPPORTSupport, pydle.features.RFC1459Support
)


class BotOwner(Protocol):
    """What the client calls back on: the bot that made it."""

    cfg: IrcConfig
    label: str  # for log lines

    def on_registered(self, client: FingerBotClient) -> None: ...

    def schedule_rejoin(self, client: FingerBotClient, channel: str) -> None: ...

    async def on_private(self, client: FingerBotClient, by: str, message: str) -> None: ...

    async def on_channel(self, client: FingerBotClient, channel: str, by: str,
                         message: str) -> None: ...


class _Done:
    """An awaitable that is already finished (see ``FingerBotClient._create_user``)."""

    __slots__ = ()

    def __await__(self) -> Any:
        return iter(())


class FingerBotClient(_Base):  # type: ignore[misc]
    RECONNECT_ON_ERROR = False  # the supervisor in IrcBot reconnects
    READ_TIMEOUT = 180  # then pydle pings the server, and gives up if nothing comes back

    def __init__(self, owner: BotOwner, nickname: str, fallback_nicknames: list[str]) -> None:
        super().__init__(nickname, fallback_nicknames=fallback_nicknames,
                         username="fingerbot", realname="fingerplat finger bot")
        self._owner = owner
        self.ready = asyncio.Event()
        self.gone = asyncio.Event()

    def _create_user(self, nickname: str) -> _Done:
        """Work around pydle issue #191 (open in 1.2.0).

        pydle's ``_sync_user``/``_rename_user`` ``await self._create_user(...)``
        although every feature defines it as a plain method, so the first JOIN
        or NICK handler fails with "NoneType can't be used in 'await'". Doing
        the work here and returning a finished awaitable fixes both callers
        without touching the rest of pydle's user tracking.
        """
        super()._create_user(nickname)
        return _Done()

    # -- connection life cycle --------------------------------------------------

    async def on_connect(self) -> None:
        await super().on_connect()  # joins the autojoin channels
        self.ready.set()
        self._owner.on_registered(self)

    async def on_disconnect(self, expected: bool) -> None:
        # Not calling super(): pydle would try to reconnect on its own.
        self.gone.set()

    async def on_raw_433(self, message: Any) -> None:
        """Nick in use (pydle sends 432, too long, here as well): try fallbacks, then give up."""
        if not self.registered and not self._attempt_nicknames:
            log.warning("irc %s: every fallback nick is taken; reconnecting later",
                        self._owner.label)
            await self.disconnect(expected=False)
            return
        await super().on_raw_433(message)

    # -- messages -----------------------------------------------------------------

    async def on_private_message(self, target: str, by: str, message: str) -> None:
        if by and not self.is_same_nick(by, self.nickname):
            await self._owner.on_private(self, by, message)

    async def on_channel_message(self, target: str, by: str, message: str) -> None:
        if by and not self.is_same_nick(by, self.nickname):
            await self._owner.on_channel(self, target, by, message)

    async def on_join(self, channel: str, user: str) -> None:
        if self.is_same_nick(user, self.nickname):
            log.info("irc %s: joined %s as %s", self._owner.label, channel, self.nickname)

    async def on_quit(self, user: str, message: str | None = None) -> None:
        await self._nick_freed(user)

    async def on_nick_change(self, old: str, new: str) -> None:
        if not self.is_same_nick(new, self.nickname):
            await self._nick_freed(old)

    async def _nick_freed(self, nick: str) -> None:
        """Whoever held our configured nick left it (seen in a shared channel): take it back."""
        wanted = self._owner.cfg.nick
        if (self.registered and self.is_same_nick(nick, wanted)
                and not self.is_same_nick(self.nickname, wanted)):
            await self.set_nickname(wanted)

    async def on_kick(self, channel: str, target: str, by: str, reason: str | None = None) -> None:
        if self.is_same_nick(target, self.nickname):
            log.warning("irc %s: kicked from %s by %s; rejoining", self._owner.label,
                        channel, by)
            self._owner.schedule_rejoin(self, channel)
