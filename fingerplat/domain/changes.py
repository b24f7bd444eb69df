"""What an audited change changed, in words: ``status: away → giving a talk``.

One rule for every place that shows audit events (the CLI's DETAIL column,
the admin UI's audit page), so they never disagree. Values are written for
people: ``yes``/``no`` for flags, lists joined with commas, ``none`` for an
empty list, ``(empty)`` for an empty text, ``—`` for no value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

MAX_VALUE = 80
_ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)?")


def _time(text: str) -> str:
    """An ISO time stored in before/after, as the rest of the UI writes times."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M")
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def describe_value(value: Any) -> str:
    if value is None:
        text = "—"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list | tuple):
        text = ", ".join(describe_value(item) for item in value) if value else "none"
    elif isinstance(value, Mapping):
        text = ", ".join(f"{k} {describe_value(v)}" for k, v in value.items()) or "none"
    elif isinstance(value, datetime):
        text = _time(value.isoformat())
    elif isinstance(value, str):
        text = _time(value) if _ISO_TIME.fullmatch(value) else value if value.strip() else "(empty)"
    else:
        text = str(value)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def describe_changes(before: Mapping[str, Any] | None, after: Mapping[str, Any] | None) -> str:
    """``field: old → new`` for each field that changed, ``; ``-separated.

    A field only in ``after`` was set (``field: new``), and left out when it
    is empty or off (a new user's blank office says nothing); one only in
    ``before`` was removed (``field was old``). Unchanged fields are left out.
    """
    before, after = before or {}, after or {}
    parts = []
    for key in sorted(set(before) | set(after)):
        old, new = before.get(key), after.get(key)
        if key in before and key in after:
            if old != new:
                parts.append(f"{key}: {describe_value(old)} → {describe_value(new)}")
        elif key in after:
            if new not in (None, "", False) and new != [] and new != {}:
                parts.append(f"{key}: {describe_value(new)}")
        else:
            parts.append(f"{key} was {describe_value(old)}")
    return "; ".join(parts)
