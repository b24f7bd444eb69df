"""Noticing that another process changed a SQLite database file.

Change events are in-process on SQLite, but ``fingerplat user set`` run from
a shell writes the same file as a running ``serve``. In WAL mode every commit
writes the ``-wal`` file (and checkpoints write the main file), so the size,
time and inode of the two files together change with every commit by anyone.
Two ``stat`` calls cost about a microsecond each: cheap enough to ask before
every cached read, which is what makes the read cache exact on SQLite too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from pathlib import Path


def sqlite_change_token(database: Path) -> Callable[[], Hashable]:
    """A function whose result changes whenever ``database`` may have changed."""
    files = (os.fspath(database), os.fspath(database) + "-wal")

    def token() -> Hashable:
        signature = []
        for name in files:
            try:
                st = os.stat(name)
            except OSError:
                signature.append(None)
            else:
                signature.append((st.st_ino, st.st_size, st.st_mtime_ns))
        return tuple(signature)

    return token
