"""The IRC adapter: finger bots on IRC, built on the pydle library (see docs/irc.md)."""

from fingerplat.adapters.irc.bot import IrcBot, IrcTiming, ShouldRun
from fingerplat.adapters.irc.bots import IrcBots, start_irc_bots

__all__ = ["IrcBot", "IrcBots", "IrcTiming", "ShouldRun", "start_irc_bots"]
