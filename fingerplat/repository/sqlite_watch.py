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

Why not ``PRAGMA data_version``, SQLite's documented way? It answers the same
question (it changes when another connection commits), and
:class:`DataVersionWatch` is kept beside the mapping so both can be measured
and tested alike. ``bench/sqlite_change_check.py`` measured, in four runs on
the shared 2-core development machine (load average 13, Python 3.11, SQLite
3.40.1), 2.2-5.4 million calls per second for the mapped header (190-450 ns a
call) against 55,000-190,000 for ``data_version`` (5-18 µs: a statement step
that takes the WAL read lock), 25 to 40 times slower, with the ``-wal``
stat+pread fallback about as slow as ``data_version``. The check runs once per
event-loop iteration, in front of cached answers that cost a few microseconds
each, so the documented way would cost as much as several cached answers per
iteration on the finger fast path. The mapping reads the header SQLite itself
documents as the wal-index format (https://www.sqlite.org/walformat.html), and
``tests/integration/test_sqlite_watch.py`` checks that it notices a change
made by another process exactly when ``data_version`` does.
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
    return ShmWatch(database)


class ShmWatch:
    """The ``-shm`` header, mapped; see the module docstring for why not ``data_version``."""

    __slots__ = ("_conn", "_fallback", "_map", "_tried", "database")

    def __init__(self, database: Path) -> None:
        self.database = database
        self._conn: sqlite3.Connection | None = None
        self._map: mmap.mmap | None = None
        self._tried = False
        self._fallback = WalWatch(os.fspath(database) + "-wal")

    def __call__(self) -> Hashable:
        if self._map is not None:
            return self._map[:SHM_HEADER_BYTES]
        if not self._tried:
            self._tried = True  # once: a failed attempt costs a connect
            if self._open():
                return self._map[:SHM_HEADER_BYTES]  # type: ignore[index]
        return self._fallback()

    @property
    def mapped(self) -> bool:
        """True once the header is mapped (False: not tried yet, or the fallback is in use)."""
        return self._map is not None

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


class DataVersionWatch:
    """``PRAGMA data_version`` on a connection of its own: SQLite's documented change check.

    The value changes when any *other* connection (in this process or another)
    has committed since the last time this connection asked. Used by the
    benchmark and the tests as the reference the mapped header is held to.
    """

    __slots__ = ("_conn",)

    def __init__(self, database: Path) -> None:
        uri = f"{database.resolve().as_uri()}?mode=rw"
        self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)

    def __call__(self) -> Hashable:
        row = self._conn.execute("PRAGMA data_version").fetchone()
        return row[0] if row else None

    def close(self) -> None:
        self._conn.close()


class WalWatch:
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
