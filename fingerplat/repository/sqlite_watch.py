"""Noticing that another process changed a SQLite database file.

Change events are in-process on SQLite, but ``fingerplat user set`` run from
a shell writes the same file as a running ``serve``. fingerplat opens SQLite
in WAL mode, where every commit by anyone updates the WAL-index header at
the start of the ``-shm`` file: the frame count, a change counter, and new
salt values when the WAL starts over after a checkpoint. SQLite keeps that
file mapped into the memory of every connection; we map it too, so reading
the header (both copies SQLite keeps, 96 bytes) is a memory read with no
system call, done before the first cached read of each event-loop iteration.
Because the mapping is shared, a commit that has returned in another process
is in the next read here.

SQLite deletes ``-shm`` when the last connection to the database closes, and
a new one would be a different file; so the watcher keeps a connection of its
own open for as long as it watches. Where the mapping cannot be made (no
``mmap`` of that file, an odd file system), it falls back to one ``stat`` and
one ``pread`` of the ``-wal`` file's size and header, which change with every
commit too.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import sqlite3
from collections.abc import Callable, Hashable
from pathlib import Path

WAL_HEADER_BYTES = 32
# Two copies of the 48-byte WAL-index header (SQLite's file format, "wal-index").
SHM_HEADER_BYTES = 96


def sqlite_change_token(database: Path) -> Callable[[], Hashable]:
    """A function whose result changes whenever ``database`` may have changed."""
    return _ShmWatch(database)


class _ShmWatch:
    __slots__ = ("_conn", "_fallback", "_map", "_tried", "database")

    def __init__(self, database: Path) -> None:
        self.database = database
        self._conn: sqlite3.Connection | None = None
        self._map: mmap.mmap | None = None
        self._tried = False
        self._fallback = _WalWatch(os.fspath(database) + "-wal")

    def __call__(self) -> Hashable:
        if self._map is not None:
            return self._map[:SHM_HEADER_BYTES]
        if not self._tried:
            self._tried = True  # once: a failed attempt costs a connect
            if self._open():
                return self._map[:SHM_HEADER_BYTES]  # type: ignore[index]
        return self._fallback()

    def _open(self) -> bool:
        """Hold a connection (so ``-shm`` stays the same file) and map its header."""
        try:
            # mode=rw: never create a database that is not there.
            uri = f"{self.database.resolve().as_uri()}?mode=rw"
            conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
            try:
                mode = conn.execute("PRAGMA journal_mode").fetchone()
                if not mode or str(mode[0]).lower() != "wal":
                    conn.close()
                    return False
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opens -shm
                fd = os.open(os.fspath(self.database) + "-shm", os.O_RDONLY | os.O_CLOEXEC)
                try:
                    self._map = mmap.mmap(fd, SHM_HEADER_BYTES, mmap.MAP_SHARED, mmap.PROT_READ)
                finally:
                    os.close(fd)
            except BaseException:
                conn.close()
                raise
        except (OSError, ValueError, sqlite3.Error):
            return False
        self._conn = conn
        return True

    def close(self) -> None:
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self._conn.close()
            self._conn = None


class _WalWatch:
    """The fallback: the ``-wal`` file's inode, size and header."""

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
