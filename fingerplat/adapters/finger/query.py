"""Parsing one RFC 1288 query line into a :class:`FingerQuery`.

Pure and free of I/O so it can be property-tested. The grammar (RFC 1288
section 2.3, with the leniencies SPEC section 2 asks for)::

    query  ::= [ "/W" [spaces] ] [ user ] { "@" host }
    user   ::= a fingerplat username (compared case-insensitively)

``/W`` may be written in any case and need not be followed by a space
(``/wAlice`` is the verbose query for ``alice``). ``user@h1@h2`` is a chain:
the rightmost host is the next hop, exactly as RFC 1288 forwards it.
Anything else (control characters, spaces inside a name, an empty host,
bytes that are not UTF-8) is garbage and raises :class:`InvalidInput` with a
message that names the problem, which the server sends back as its answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fingerplat.domain import rules
from fingerplat.domain.errors import InvalidInput

MAX_QUERY_BYTES = 512

# Host names and IP literals as they may appear after "@": letters, digits,
# dots, hyphens, underscores (seen in the wild), and colons/brackets for IPv6.
_HOST_RE = re.compile(r"[a-z0-9_.:\[\]-]{1,253}")


@dataclass(frozen=True, slots=True)
class FingerQuery:
    """A parsed query.

    ``user`` is the normalised username, or ``""`` for the user list.
    ``hosts`` is the ``@`` chain left to right (``("h1", "h2")`` for
    ``user@h1@h2``); the last one is asked first.
    """

    user: str = ""
    hosts: tuple[str, ...] = ()
    verbose: bool = False

    @property
    def is_list(self) -> bool:
        return not self.user

    def without_last_host(self) -> FingerQuery:
        return FingerQuery(self.user, self.hosts[:-1], self.verbose)


def parse_query(raw: bytes | str) -> FingerQuery:
    """Parse one query line (without its line end; a trailing CR is tolerated)."""
    if isinstance(raw, bytes):
        if len(raw) > MAX_QUERY_BYTES + 1:
            raise InvalidInput(f"query too long: at most {MAX_QUERY_BYTES} bytes")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput("query is not valid UTF-8 text") from None
    else:
        text = raw
        if len(text.encode("utf-8", "surrogatepass")) > MAX_QUERY_BYTES + 1:
            raise InvalidInput(f"query too long: at most {MAX_QUERY_BYTES} bytes")
    text = text.removesuffix("\r").strip(" \t")
    for ch in text:
        if ch != "\t" and (ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0 or ch in "\u2028\u2029"):
            raise InvalidInput("query must not contain control characters")

    verbose = False
    if text[:2] in ("/W", "/w"):
        verbose = True
        text = text[2:].lstrip(" \t")

    user_part, *host_parts = text.split("@")
    if any(ch in user_part for ch in " \t"):
        raise InvalidInput("query must be one user name, optionally followed by @host")
    user = rules.username(user_part) if user_part else ""
    hosts = tuple(_host(h) for h in host_parts)
    return FingerQuery(user=user, hosts=hosts, verbose=verbose)


def _host(value: str) -> str:
    host = value.strip().lower().rstrip(".") if value.strip() != "." else ""
    if not host:
        raise InvalidInput("empty host name after '@'")
    if not _HOST_RE.fullmatch(host):
        shown = value if len(value) <= 40 else value[:37] + "..."
        raise InvalidInput(f"invalid host name {shown!r} after '@'")
    return host
