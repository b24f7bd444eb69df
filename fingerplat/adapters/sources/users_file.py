"""The tutorial's users file: one ``user: status`` per line.

Reading is strict about what it accepts and lenient about what it skips:
blank lines and ``#`` comments are ignored; a line that is not UTF-8 or has
no colon becomes a record carrying an error, so the import report names its
line number and the other lines still go in. ``user:`` with nothing after the
colon means "no status" (it clears one). CRLF and LF line ends both work.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fingerplat.domain import collector
from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.imports import ImportRecord

# A users file is a list of one-line statuses; anything this big is a mistake.
MAX_FILE_BYTES = 256 * 1024 * 1024
_SHOWN = 40


def _shown(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace")
    return text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "..."


def parse_users_file(data: bytes) -> list[ImportRecord]:
    """One record per meaningful line, numbered from 1 as an editor shows them."""
    with collector.paused():  # one object per line, kept: no cycles to look for
        return _parse(data)


def _parse(data: bytes) -> list[ImportRecord]:
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
