"""Neutralising stored text before it reaches a terminal, an IRC line, a log or a page.

Stored text should already be clean (the rules refuse control characters and
bidirectional controls), but rows may come from older releases, imports or a
remote finger server, so every output path runs through :func:`printable`
(or :func:`web_text` for HTML) as a second wall.
"""

from __future__ import annotations

import re

# The bidirectional embedding, override and isolate controls (LRE, RLE, PDF,
# LRO, RLO; LRI, RLI, FSI, PDI): one of them makes the text after it display
# in another order than it is stored ("Trojan Source"), so a status could
# visually swallow or reorder the lines around it. The marks (LRM, RLM, ALM)
# only nudge the direction of neighbouring punctuation, reorder nothing, and
# are needed to write mixed right-to-left text correctly: they are allowed.
BIDI_CONTROLS = "\u202a-\u202e\u2066-\u2069"

# C0 controls except TAB, DEL, C1 controls, the Unicode line/paragraph
# separators that some terminals treat as line breaks, the bidi controls, and
# lone surrogates (they cannot be encoded, so writing one would fail the whole
# answer).
_CONTROL_RE = re.compile(
    f"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}\ud800-\udfff]"
)
# The same for a web page, which keeps its line ends (a plan is shown in
# <pre>): HTML has no use for any other control character, and a browser
# would still apply a bidi override.
_WEB_CONTROL_RE = re.compile(
    f"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f{BIDI_CONTROLS}\ud800-\udfff]"
)


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
    if text.isascii() and text.isprintable():  # the common case: nothing to replace
        return text
    return _CONTROL_RE.sub(_caret, text)


def printable_lines(text: str) -> list[str]:
    """Split multi-line text (a plan, a remote answer) into neutralised lines."""
    normalised = text.replace("\r\n", "\n").replace("\r", "\n")
    return [printable(line) for line in normalised.split("\n")]


def web_text(text: str) -> str:
    """:func:`printable` for HTML: the same visible spellings, but TAB, LF and CR stay.

    Applied to every rendered page (public and admin), templates and
    operators' overrides alike, so no control byte reaches a browser whatever
    a template does with the text.
    """
    if _WEB_CONTROL_RE.search(text) is None:
        return text
    return _WEB_CONTROL_RE.sub(_caret, text)
