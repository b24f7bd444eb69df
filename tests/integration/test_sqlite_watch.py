"""The SQLite change watcher sees every commit by any process, through the -shm header."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from fingerplat.repository.sqlite_watch import _ShmWatch, sqlite_change_token


def make_wal_database(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.commit()
    conn.close()


def commit_elsewhere(path: Path, sql: str = "INSERT INTO t VALUES (1)") -> None:
    """A commit by another process, as ``fingerplat user set`` would make."""
    code = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
            "c.execute(sys.argv[2]); c.commit(); c.close()")
    subprocess.run([sys.executable, "-c", code, str(path), sql], check=True, timeout=30)


def test_every_commit_by_another_process_changes_the_token(tmp_path: Path) -> None:
    database = tmp_path / "f.db"
    make_wal_database(database)
    token = sqlite_change_token(database)
    assert isinstance(token, _ShmWatch)
    seen = token()
    assert token() == seen  # nothing changed: the same token
    assert token._map is not None, "the -shm header is mapped, not read with system calls"
    for _ in range(5):
        commit_elsewhere(database)
        now = token()
        assert now != seen
        assert token() == now
        seen = now
    # A checkpoint that empties the WAL, then the next commit (the WAL starts over).
    commit_elsewhere(database, "PRAGMA wal_checkpoint(TRUNCATE)")
    seen = token()
    commit_elsewhere(database)
    assert token() != seen


def test_a_database_not_in_wal_mode_falls_back_to_the_wal_file_check(tmp_path: Path) -> None:
    database = tmp_path / "plain.db"
    conn = sqlite3.connect(database)
    conn.execute("CREATE TABLE t (x INTEGER)")
    conn.commit()
    conn.close()
    token = sqlite_change_token(database)
    assert token() == "no-wal"
    assert token._map is None  # type: ignore[attr-defined]
