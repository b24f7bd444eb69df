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
    records: list[ImportRecord] = []
    for number, entry in enumerate(users, start=1):
        if not isinstance(entry, dict) or not isinstance(entry.get("username"), str):
            records.append(ImportRecord(number, "", error="entry has no username"))
            continue
        fields: dict[str, object] = {}
        for key in ("full_name", "office", "phone", "project", "plan"):
            value = entry.get(key)
            if value is not None and not isinstance(value, str):
                fields = {"error": f"{key} must be a string"}
                break
            fields[key] = value
        hidden = entry.get("hidden")
        status = entry.get("status")
        if "error" not in fields and hidden is not None and not isinstance(hidden, bool):
            fields = {"error": "hidden must be true or false"}
        if "error" not in fields and status is not None and not isinstance(status, str):
            fields = {"error": "status must be a string or null"}
        if "error" in fields:
            records.append(ImportRecord(number, entry["username"], error=str(fields["error"])))
            continue
        records.append(ImportRecord(
            number, entry["username"], status=status or "",
            hidden=hidden, **fields,  # type: ignore[arg-type]
        ))
    return records
