"""What ``fingerplat export`` writes, and reading its JSON form back for ``import``.

Two formats: the users file (``user: status`` lines, read back by
:func:`~fingerplat.adapters.sources.users_file.parse_users_file`; only names
and statuses survive it) and JSON (everything about every user, for backups
and for moving a tenant; read back by :func:`parse_json_export`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

from fingerplat.adapters.times import iso_utc
from fingerplat.adapters.user_fields import user_dict
from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.imports import ImportRecord
from fingerplat.domain.model import User

#: The members of each user in a JSON export (read back by :func:`parse_json_export`).
EXPORT_KEYS = ("username", "full_name", "office", "phone", "project", "hidden", "status",
               "status_set_at", "plan", "created_at")


def render_users_file(users: Iterable[User], *, tenant: str) -> str:
    """The users-file form of an export: reads back with :func:`parse_users_file`.

    Only usernames and statuses survive this format; use ``--format json`` for
    everything. Users without a status are written as ``user:``.
    """
    stamp = iso_utc(datetime.now(UTC), "seconds")
    lines = [f"# fingerplat users file: tenant {tenant}, exported {stamp}"]
    lines.extend(f"{u.username}: {u.status}" if u.status else f"{u.username}:" for u in users)
    return "\n".join(lines) + "\n"


def render_json(users: Iterable[User], *, tenant: str) -> str:
    """Everything about every user, for backups and for moving a tenant."""
    document = {
        "tenant": tenant,
        "exported_at": iso_utc(datetime.now(UTC)),
        "users": [user_dict(u, EXPORT_KEYS) for u in users],
    }
    return json.dumps(document, ensure_ascii=False, indent=2) + "\n"


def parse_json_export(data: bytes) -> list[ImportRecord]:
    """Records from a ``--format json`` export; ``line`` is the user's position (from 1)."""
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"not a fingerplat JSON export: {exc}") from None
    users = document.get("users") if isinstance(document, dict) else None
    if not isinstance(users, list):
        raise InvalidInput("not a fingerplat JSON export: no \"users\" list")
    return [_record(number, entry) for number, entry in enumerate(users, start=1)]


#: The text fields of an exported user (``null`` or a string each).
_TEXT_KEYS = ("full_name", "office", "phone", "project", "plan")


def _record(number: int, entry: object) -> ImportRecord:
    """One exported user as an import record, or a record of what is wrong with it."""
    if not isinstance(entry, dict) or not isinstance(entry.get("username"), str):
        return ImportRecord(number, "", error="entry has no username")
    problem = _problem(entry)
    if problem is not None:
        return ImportRecord(number, entry["username"], error=problem)
    texts = {key: entry.get(key) for key in _TEXT_KEYS}
    return ImportRecord(number, entry["username"], status=entry.get("status") or "",
                        hidden=entry.get("hidden"), **texts)  # type: ignore[arg-type]


def _problem(entry: dict[str, object]) -> str | None:
    """The first field of ``entry`` that has the wrong type, in words; None when all fit."""
    for key in _TEXT_KEYS:
        value = entry.get(key)
        if value is not None and not isinstance(value, str):
            return f"{key} must be a string"
    hidden = entry.get("hidden")
    if hidden is not None and not isinstance(hidden, bool):
        return "hidden must be true or false"
    status = entry.get("status")
    if status is not None and not isinstance(status, str):
        return "status must be a string or null"
    return None
