"""What may go onto the IRC wire, and how a message to the bot is read.

IRC is a line protocol: a CR, LF or NUL inside a parameter ends the command
and lets the rest of the text become a *new* command (``QUIT``, ``PRIVMSG
#other``...). Statuses are validated as single lines when they are stored, but
rows can come from older releases or imports, so every piece of stored text
passes :func:`irc_text` on its way out, and every line is cut to fit the
512-byte limit *after* the server has put our prefix in front of it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fingerplat.domain.text import printable

# RFC 1459/2812: a line is at most 512 bytes including the trailing CRLF.
IRC_LINE_MAX_BYTES = 512
# The server relays ``:nick!user@host PRIVMSG target :text``; we do not know
# our host as the server shows it, so budget for the longest one (HOSTLEN).
HOST_MAX_CHARS = 63
ELLIPSIS = "…"

# Whatever printable() leaves that still has no business on the wire: TAB
# (becomes a space). Bidi embedding/override/isolate controls, which can make
# a status visually swallow or reorder the text around it, are already shown
# as ``\u202e`` by printable(); removed here too should printable() change.
_LEFTOVER_RE = re.compile("[\t\u202a-\u202e\u2066-\u2069]")
# Belt and braces: nothing below 0x20, no DEL, no C1, no line separators.
_FORBIDDEN_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\x85]")

# RFC 2812 nickname characters (servers may allow longer names than 9).
NICK_RE = re.compile(r"[A-Za-z\[\]\\`_^{|}][A-Za-z0-9\[\]\\`_^{|}-]{0,29}")
# A channel: a type prefix, then no space, comma, BEL or control character.
CHANNEL_RE = re.compile(r"[#&+!][^\x00-\x20,\x07:]{1,49}")

USAGE = "usage: finger <user>  (in a channel: !finger <user>)"


def irc_text(text: str) -> str:
    """Neutralise stored text for one IRC line: control characters made visible, never raw."""
    shown = printable(text)
    shown = _LEFTOVER_RE.sub(lambda m: " " if m.group() == "\t" else "", shown)
    return _FORBIDDEN_RE.sub("", shown)


def fit_bytes(text: str, max_bytes: int) -> str:
    """Cut ``text`` to at most ``max_bytes`` of UTF-8, on a character boundary, marking the cut."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    room = max(0, max_bytes - len(ELLIPSIS.encode("utf-8")))
    return data[:room].decode("utf-8", errors="ignore") + ELLIPSIS


def privmsg_budget(nick: str, user: str, target: str) -> int:
    """Bytes left for the text of ``PRIVMSG target :text`` once the server adds our prefix."""
    prefix = f":{nick}!~{user}@{'x' * HOST_MAX_CHARS} PRIVMSG {target} :"
    return IRC_LINE_MAX_BYTES - len(b"\r\n") - len(prefix.encode("utf-8"))


def safe_line(text: str, *, nick: str, user: str, target: str) -> str:
    """The text of one PRIVMSG, safe and short enough for the wire; never empty."""
    return fit_bytes(irc_text(text), privmsg_budget(nick, user, target)) or " "


def status_reply(username: str, status: str | None) -> str:
    """``alice: <status>``; a user without a status says so instead of an empty reply."""
    return f"{username}: {status if status else '(no status)'}"


def no_such_user(name: str) -> str:
    return f"No such user: {name}"


def announcement(username: str, status: str | None) -> str:
    if status is None:
        return f"{username} cleared their status"
    return f"{username} is now: {status}"


@dataclass(frozen=True, slots=True)
class Query:
    """A finger request read from an IRC message. ``name`` is None when it asks for help."""

    name: str | None


def parse_private(message: str) -> Query | None:
    """``alice``, ``finger alice`` or ``!finger alice`` in a private message; None: ignore."""
    text = message.strip()
    if not text or _has_control(text):
        return None  # CTCP (\x01...), colour codes and the like: not for us
    words = text.split()
    if words[0].lower() in ("finger", "!finger"):
        return Query(words[1] if len(words) == 2 else None)
    if len(words) == 1 and words[0].lower() not in ("help", "?"):
        return Query(words[0])
    return Query(None)


def parse_channel(message: str) -> Query | None:
    """Only ``!finger alice`` counts in a channel; anything else is other people's talk."""
    text = message.strip()
    if _has_control(text):
        return None
    words = text.split()
    if not words or words[0].lower() != "!finger":
        return None
    return Query(words[1] if len(words) == 2 else None)


def fallback_nicks(nick: str, count: int = 8) -> list[str]:
    """Nicks to try when ``nick`` is taken: ``nick_``, ``nick__``, ``nick1``...

    Each suffix is also tried on the nick shortened to nine characters, the
    RFC 2812 minimum NICKLEN, so a server with short nicks still takes one.
    """
    out: list[str] = []
    for suffix in ["_", "__", *(str(i) for i in range(1, count + 1))]:
        for base in (nick, nick[: max(1, 9 - len(suffix))]):
            candidate = base + suffix
            if candidate != nick and candidate not in out:
                out.append(candidate)
    return out


def _has_control(text: str) -> bool:
    return any(ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 for ch in text)
