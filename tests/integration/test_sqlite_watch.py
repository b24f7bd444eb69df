"""The SQLite change watcher sees every commit by any process, through the -shm header.

The mapped header is held to ``PRAGMA data_version``, SQLite's documented change
check: for every kind of thing another process does, both notice it or neither.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from fingerplat.repository.sqlite_watch import DataVersionWatch, ShmWatch, sqlite_change_token


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


def run_elsewhere(path: Path, *statements: str) -> None:
    """``statements`` in another process, in autocommit mode (BEGIN/COMMIT as written)."""
    code = ("import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "[c.execute(s) for s in sys.argv[2:]]; c.close()")
    subprocess.run([sys.executable, "-c", code, str(path), *statements], check=True, timeout=30)


# What another process does, and whether it commits a change that must be seen.
ELSEWHERE: list[tuple[str, list[str], bool]] = [
    ("insert", ["INSERT INTO t VALUES (1)"], True),
    ("a read", ["SELECT count(*) FROM t"], False),
    ("a rolled back insert", ["BEGIN", "INSERT INTO t VALUES (2)", "ROLLBACK"], False),
    ("an update matching nothing", ["UPDATE t SET x = 5 WHERE x = 99"], False),
    ("an empty write transaction", ["BEGIN IMMEDIATE", "COMMIT"], False),
    ("a passive checkpoint", ["PRAGMA wal_checkpoint(PASSIVE)"], False),
    ("an update", ["UPDATE t SET x = 7"], True),
    ("a truncating checkpoint", ["PRAGMA wal_checkpoint(TRUNCATE)"], False),
    ("an insert into the emptied WAL", ["INSERT INTO t VALUES (3)"], True),
    ("a delete", ["DELETE FROM t"], True),
]


def test_the_mapped_header_notices_exactly_what_data_version_notices(tmp_path: Path) -> None:
    database = tmp_path / "f.db"
    make_wal_database(database)
    shm, reference = ShmWatch(database), DataVersionWatch(database)
    try:
        before = (shm(), reference())
        assert shm.mapped
        for what, statements, must_be_seen in ELSEWHERE:
            run_elsewhere(database, *statements)
            now = (shm(), reference())
            shm_saw, data_version_saw = now[0] != before[0], now[1] != before[1]
            assert shm_saw == data_version_saw, (
                f"after {what} in another process: -shm header changed {shm_saw}, "
                f"data_version changed {data_version_saw}")
            if must_be_seen:  # anything else counts as data_version counts it
                assert shm_saw, f"{what} in another process was not noticed"
            before = now
    finally:
        shm.close()
        reference.close()


def test_every_commit_by_another_process_changes_the_token(tmp_path: Path) -> None:
    database = tmp_path / "f.db"
    make_wal_database(database)
    token = sqlite_change_token(database)
    assert isinstance(token, ShmWatch)
    seen = token()
    assert token() == seen  # nothing changed: the same token
    assert token.mapped, "the -shm header is mapped, not read with system calls"
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
    assert not token.mapped  # type: ignore[attr-defined]
