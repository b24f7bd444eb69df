"""Noticing that another process changed a SQLite database file.

Change events are in-process on SQLite, but ``fingerplat user set`` run from
a shell writes the same file as a running ``serve``. fingerplat opens SQLite
in WAL mode, where a commit appends frames to the ``-wal`` file, and the
first commit after a checkpoint writes it again from its start under a new
header (new salt values); the last connection to close removes it. So the
file's inode and size together with its 32-byte header change with every
commit by anyone (the time alone would not do: it only ticks every few
milliseconds). One ``stat`` and one ``pread`` on a file kept open, about two
microseconds, before every cached read is what makes the read cache exact
on SQLite too.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from pathlib import Path

WAL_HEADER_BYTES = 32


def sqlite_change_token(database: Path) -> Callable[[], Hashable]:
    """A function whose result changes whenever ``database`` may have changed."""
    return _WalWatch(os.fspath(database) + "-wal")


class _WalWatch:
    __slots__ = ("fd", "ino", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1
        self.ino = -1

    def __call__(self) -> Hashable:
        try:
            st = os.stat(self.path)
            if st.st_ino != self.ino:
                self._reopen(st.st_ino)
            header = os.pread(self.fd, WAL_HEADER_BYTES, 0)
        except OSError:
            return None if os.path.exists(self.path) else "no-wal"
        return (st.st_ino, st.st_size, header)

    def _reopen(self, ino: int) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        self.ino = ino

    def __del__(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
