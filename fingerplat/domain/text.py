"""Neutralising stored text before it reaches a terminal, an IRC line or a log.

Stored text should already be clean (the rules refuse control characters),
but rows may come from older releases, imports or a remote finger server, so
every output path runs through :func:`printable` as a second wall.
"""

from __future__ import annotations

import re

# C0 controls except TAB, DEL, C1 controls, the Unicode line/paragraph
# separators that some terminals treat as line breaks, and lone surrogates
# (they cannot be encoded, so writing one would fail the whole answer).
_CONTROL_RE = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")


def _caret(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return "^" + chr(code + 0x40)
    if code == 0x7F:
        return "^?"
    return f"\\u{code:04x}"


def printable(text: str) -> str:
    """Return ``text`` with every control character except TAB shown as ``^X``.

    ESC becomes ``^[`` so an escape sequence is visible but inert; a CR or LF
    inside a single-line field becomes ``^M``/``^J`` and cannot start a new
    protocol line.
    """
    return _CONTROL_RE.sub(_caret, text)


def printable_lines(text: str) -> list[str]:
    """Split multi-line text (a plan, a remote answer) into neutralised lines."""
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    return [printable(line) for line in normalised.split("\n")]
