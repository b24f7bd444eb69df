"""The naming and size rules of SPEC section 1, in one place.

Validators normalise (lower-case names, strip line ends) and raise
:class:`InvalidInput` with a message that names the rule, so every adapter
reports the same sentence for the same mistake.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.text import BIDI_CONTROLS

TENANT_SLUG_RE = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
USERNAME_RE = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
# A DNS name: labels of letters, digits and hyphens, at least one dot.
DOMAIN_RE = re.compile(
    r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+"
)

STATUS_MAX_CHARS = 280
PLAN_MAX_BYTES = 16 * 1024
ONE_LINE_FIELD_MAX_CHARS = 200
TENANT_NAME_MAX_CHARS = 200
ADMIN_NAME_RE = re.compile(r"[a-z_][a-z0-9_.@-]{0,63}")
ADMIN_PASSWORD_MIN_CHARS = 8


def ascii_digits(text: str) -> bool:
    """True for a non-empty run of ASCII ``0``-``9``.

    ``str.isdigit`` also accepts superscripts and other scripts' digits
    (``"²".isdigit()`` is true) that ``int`` then refuses with a ValueError:
    every number read from untrusted input is checked with this instead.
    """
    return text.isascii() and text.isdigit()


def moment(value: str, field: str) -> datetime:
    """An ISO 8601 time with its zone (``2026-01-31T12:00:00Z``), as UTC.

    A time without a zone is refused rather than guessed (it would compare
    as local time on one database and fail on the other), and so is one that
    leaves the representable range once moved to UTC (``9999-12-31T23:59:59-14:00``).
    """
    text = (value or "").strip()
    example = "like 2026-01-31T12:00:00Z"
    if not text.isascii() or len(text) > 40:
        raise InvalidInput(f"{field} must be an ISO 8601 time {example}")
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z").replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(f"{field} must be an ISO 8601 time {example}") from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidInput(f"{field} must include a time zone (Z or +01:00), {example}")
    try:
        return parsed.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(f"{field} is out of range: {text!r}") from None


def day(value: str, field: str, *, next_day: bool = False) -> datetime:
    """A ``YYYY-MM-DD`` date as midnight UTC (the following midnight with ``next_day``)."""
    text = (value or "").strip()
    try:
        if not text.isascii():
            raise ValueError(text)
        parsed = date.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{field} must be a date like 2026-11-21") from None
    start = datetime(parsed.year, parsed.month, parsed.day, tzinfo=UTC)
    try:
        return start + timedelta(days=1) if next_day else start
    except OverflowError:
        raise InvalidInput(f"{field} is out of range: {text!r}") from None


def _ascii_lower(value: str | None) -> str:
    """Strip and lower-case, refusing non-ASCII first.

    ``str.lower`` maps some non-ASCII letters onto ASCII ones (the Kelvin sign
    becomes ``k``), which would let two different inputs name one account.
    """
    text = (value or "").strip()
    return text.lower() if text.isascii() else "\x00"


def tenant_slug(value: str) -> str:
    slug = _ascii_lower(value)
    if not TENANT_SLUG_RE.fullmatch(slug):
        raise InvalidInput(
            f"invalid tenant slug {value!r}: use 1-63 characters a-z, 0-9 and '-', "
            "starting with a letter or digit"
        )
    return slug


def username(value: str) -> str:
    name = _ascii_lower(value)
    if not USERNAME_RE.fullmatch(name):
        raise InvalidInput(
            f"invalid username {_shown(value)}: use 1-32 characters a-z, 0-9, '_', '.' "
            "and '-', starting with a letter or '_'"
        )
    return name


def admin_name(value: str) -> str:
    name = _ascii_lower(value)
    if not ADMIN_NAME_RE.fullmatch(name):
        raise InvalidInput(
            f"invalid admin name {_shown(value)}: use 1-64 characters a-z, 0-9, '_', '.', "
            "'@' and '-', starting with a letter or '_'"
        )
    return name


def domain(value: str) -> str:
    """A DNS name, lower-cased, without a trailing dot; IDNs in their ``xn--`` form."""
    name = _ascii_lower(value).rstrip(".")
    if not DOMAIN_RE.fullmatch(name):
        raise InvalidInput(f"invalid domain {_shown(value)}: expected a DNS name like acme.example")
    return name


def status(value: str) -> str:
    """A status is one line of at most 280 characters; surrounding blanks are dropped."""
    text = (value or "").strip()
    if not text:
        raise InvalidInput("status must not be empty (use clear to remove a status)")
    _refuse_line_breaks("status", text)
    _refuse_control_chars("status", text)
    if len(text) > STATUS_MAX_CHARS:
        raise InvalidInput(
            f"status is {len(text)} characters long; at most {STATUS_MAX_CHARS} are allowed"
        )
    return text


def plan(value: str) -> str:
    """A plan is free text of at most 16 KiB (UTF-8); line ends are normalised to LF.

    Tabs and line breaks are its only control characters: an escape sequence
    in a plan would be replayed on every finger client's terminal.
    """
    text = (value or "").replace("\r\n", "\n").replace("\r", "\n")
    _refuse_surrogates("plan", text)
    size = len(text.encode("utf-8"))
    if size > PLAN_MAX_BYTES:
        raise InvalidInput(f"plan is {size} bytes long; at most {PLAN_MAX_BYTES} (16 KiB) allowed")
    _refuse_control_chars("plan", text, allowed="\t\n")
    return text.rstrip("\n")


def one_line(field: str, value: str | None, max_chars: int = ONE_LINE_FIELD_MAX_CHARS) -> str:
    """Full name, office, phone, project: one line each, bounded length."""
    text = (value or "").strip()
    _refuse_line_breaks(field, text)
    _refuse_control_chars(field, text)
    if len(text) > max_chars:
        raise InvalidInput(f"{field} is {len(text)} characters long; at most {max_chars} allowed")
    return text


def tenant_name(value: str) -> str:
    text = one_line("tenant name", value, TENANT_NAME_MAX_CHARS)
    if not text:
        raise InvalidInput("tenant name must not be empty")
    return text


def admin_password(value: str) -> str:
    if len(value or "") < ADMIN_PASSWORD_MIN_CHARS:
        raise InvalidInput(f"password must be at least {ADMIN_PASSWORD_MIN_CHARS} characters long")
    if len(value) > 1024:
        raise InvalidInput("password must be at most 1024 characters long")
    return value


# One regex search instead of a generator over seven characters (an import checks
# 100,000s of statuses).
_LINE_BREAK_RE = re.compile("[\r\n\u2028\u2029\x0b\x0c\x85]")


def _refuse_line_breaks(field: str, text: str) -> None:
    if _LINE_BREAK_RE.search(text) is not None:
        raise InvalidInput(f"{field} must be a single line")


# Anything either check below could refuse; most text has none, so one regex
# search replaces two Python loops (bulk imports check 100,000s of values).
_SUSPECT_RE = re.compile(f"[\x00-\x1f\x7f-\x9f{BIDI_CONTROLS}\ud800-\udfff]")
_BIDI_RE = re.compile(f"[{BIDI_CONTROLS}]")


def _refuse_control_chars(field: str, text: str, allowed: str = "\t") -> None:
    """C0 (but ``allowed``), DEL and C1 controls, bidi controls and lone surrogates are refused."""
    if _SUSPECT_RE.search(text) is None:
        return
    for ch in text:
        if ch not in allowed and (ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0):
            raise InvalidInput(
                f"{field} must not contain control characters (found {ord(ch):#04x})"
            )
    bidi = _BIDI_RE.search(text)
    if bidi is not None:
        raise InvalidInput(
            f"{field} must not contain bidirectional control characters "
            f"(found U+{ord(bidi.group()):04X}, which reorders how the text is displayed)"
        )
    _refuse_surrogates(field, text)


def _refuse_surrogates(field: str, text: str) -> None:
    """Lone surrogates (from a broken decoder) cannot be stored as UTF-8."""
    for ch in text:
        if 0xD800 <= ord(ch) <= 0xDFFF:
            raise InvalidInput(f"{field} is not valid Unicode (lone surrogate {ord(ch):#06x})")


def _shown(value: object) -> str:
    """Quote user input for an error message without letting it run on forever."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"
