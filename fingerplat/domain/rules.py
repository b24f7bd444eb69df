"""The naming and size rules of SPEC section 1, in one place.

Validators normalise (lower-case names, strip line ends) and raise
:class:`InvalidInput` with a message that names the rule, so every adapter
reports the same sentence for the same mistake.
"""

from __future__ import annotations

import re

from fingerplat.domain.errors import InvalidInput

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


def _refuse_line_breaks(field: str, text: str) -> None:
    if any(ch in text for ch in "\r\n\u2028\u2029\x0b\x0c\x85"):
        raise InvalidInput(f"{field} must be a single line")


# Anything either check below could refuse; most text has none, so one regex
# search replaces two Python loops (bulk imports check 100,000s of values).
_SUSPECT_RE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def _refuse_control_chars(field: str, text: str, allowed: str = "\t") -> None:
    """C0 (but ``allowed``), DEL and C1 controls, and lone surrogates, are refused."""
    if _SUSPECT_RE.search(text) is None:
        return
    for ch in text:
        if ch not in allowed and (ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0):
            raise InvalidInput(
                f"{field} must not contain control characters (found {ord(ch):#04x})"
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
