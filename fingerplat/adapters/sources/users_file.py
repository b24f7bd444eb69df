"""The tutorial's users file: one ``user: status`` per line.

Reading is strict about what it accepts and lenient about what it skips:
blank lines and ``#`` comments are ignored; a line that is not UTF-8 or has
no colon becomes a record carrying an error, so the import report names its
line number and the other lines still go in. ``user:`` with nothing after the
colon means "no status" (it clears one). CRLF and LF line ends both work.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.imports import ImportRecord
from fingerplat.domain.model import User

# A users file is a list of one-line statuses; anything this big is a mistake.
MAX_FILE_BYTES = 256 * 1024 * 1024
_SHOWN = 40


def _shown(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    return text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "..."


def parse_users_file(data: bytes) -> list[ImportRecord]:
    """One record per meaningful line, numbered from 1 as an editor shows them."""
    data = data.removeprefix(b"\xef\xbb\xbf")
    records: list[ImportRecord] = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        raw = raw.removesuffix(b"\r")
        stripped = raw.strip()
        if not stripped or stripped.startswith(b"#"):
            continue
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            records.append(ImportRecord(number, _shown(raw.partition(b":")[0]),
                                        error="line is not valid UTF-8 text"))
            continue
        name, colon, status = line.partition(":")
        if not colon:
            records.append(ImportRecord(number, _shown(raw),
                                        error="expected 'user: status' (no colon on this line)"))
            continue
        records.append(ImportRecord(number, name.strip(), status=status.strip()))
    return records


def read_users_file(path: str | os.PathLike[str]) -> list[ImportRecord]:
    """Read and parse a users file, refusing what is not a regular, sane-sized file."""
    file = Path(path)
    try:
        # Checked before opening: opening a FIFO or device could block or never end.
        if not stat.S_ISREG(file.stat().st_mode):
            raise InvalidInput(f"{file} is not a regular file")
        with file.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        raise InvalidInput(f"users file {file} does not exist") from None
    except PermissionError:
        raise InvalidInput(f"users file {file} cannot be read: permission denied") from None
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput(f"users file {file} is larger than {MAX_FILE_BYTES // 2**20} MiB")
    return parse_users_file(data)


def file_signature(path: str | os.PathLike[str]) -> tuple[int, int, int] | None:
    """What changes when the file is rewritten: inode, size, modification time."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def render_users_file(users: Iterable[User], *, tenant: str) -> str:
    """The users-file form of an export: reads back with :func:`parse_users_file`.

    Only usernames and statuses survive this format; use ``--format json`` for
    everything. Users without a status are written as ``user:``.
    """
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = [f"# fingerplat users file: tenant {tenant}, exported {stamp}"]
    lines.extend(f"{u.username}: {u.status}" if u.status else f"{u.username}:" for u in users)
    return "\n".join(lines) + "\n"


def render_json(users: Iterable[User], *, tenant: str) -> str:
    """Everything about every user, for backups and for moving a tenant."""
    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    document = {
        "tenant": tenant,
        "exported_at": datetime.now(UTC).isoformat(),
        "users": [
            {
                "username": u.username, "full_name": u.full_name, "office": u.office,
                "phone": u.phone, "project": u.project, "hidden": u.hidden,
                "status": u.status, "status_set_at": iso(u.status_set_at), "plan": u.plan,
                "created_at": iso(u.created_at),
            }
            for u in users
        ],
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
