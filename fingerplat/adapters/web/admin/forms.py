"""Reading submitted form fields: strings, checkboxes, whole numbers, dates.

Only shape is checked here (is it a number, a date); what a value may be is
the domain's rule, checked by the service, so the same mistake gets the same
message in every adapter.
"""

from __future__ import annotations

from datetime import datetime

from multidict import MultiDictProxy

from fingerplat.domain import rules
from fingerplat.domain.errors import InvalidInput

Form = MultiDictProxy[object]

FIELD_MAX = 20_000  # well above the largest rule (a 16 KiB plan); the service checks precisely


def text(form: Form, name: str, default: str = "") -> str:
    value = form.get(name, default)
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be text")
    if len(value) > FIELD_MAX:
        raise InvalidInput(f"{name} is too long")
    return value


def checkbox(form: Form, name: str) -> bool:
    return name in form and form.get(name) not in ("", "0", "off", "false")


def optional_int(value: str | None, what: str) -> int | None:
    value = (value or "").strip()
    if not value:
        return None
    if not rules.ascii_digits(value) or len(value) > 9:
        raise InvalidInput(f"{what} must be a whole number")
    return int(value)


def day_start(value: str | None, what: str, *, next_day: bool = False) -> datetime | None:
    """A ``YYYY-MM-DD`` date as midnight UTC (the following midnight for an inclusive end)."""
    value = (value or "").strip()
    if not value:
        return None
    return rules.day(value, what, next_day=next_day)


def words(value: str) -> list[str]:
    """Domains typed separated by commas, spaces or new lines."""
    return [w for w in value.replace(",", " ").split() if w]
