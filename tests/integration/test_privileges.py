"""What ``serve --user/--group`` checks and hands over before dropping root.

Runs as root (as CI does) on real files; the drop itself (irreversible for
the process) is tested on a real ``serve`` in tests/e2e/test_operations_process.py.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fingerplat.domain.errors import InvalidInput
from fingerplat.server import privileges
from fingerplat.server.privileges import RunAs

NOBODY = RunAs("nobody", None, 65534, 65534)


def test_names_are_checked_before_anything_is_bound():
    assert privileges.resolve(None, None) is None
    with pytest.raises(InvalidInput, match="--user: no such user: no-such-user-xyz"):
        privileges.resolve("no-such-user-xyz", None)
    with pytest.raises(InvalidInput, match="--group: no such group: no-such-group-xyz"):
        privileges.resolve("nobody", "no-such-group-xyz")
    nobody = privileges.resolve("nobody", None)
    assert nobody is not None and nobody.uid == 65534  # primary group when no --group
    group_only = privileges.resolve(None, "nogroup")
    assert group_only is not None and group_only.uid is None


def test_a_directory_of_its_own_is_handed_over_with_the_database(tmp_path: Path):
    directory = tmp_path / "fingerplat"
    directory.mkdir()
    database = directory / "fingerplat.db"
    for name in ("fingerplat.db", "fingerplat.db-wal", "fingerplat.db-shm"):
        (directory / name).write_bytes(b"")
    privileges.hand_over_sqlite(database, NOBODY)
    for path in (directory, *directory.iterdir()):
        assert (path.stat().st_uid, path.stat().st_gid) == (65534, 65534), path


def test_a_shared_directory_is_never_handed_over(tmp_path: Path):
    database = tmp_path / "fingerplat.db"
    database.write_bytes(b"")
    (tmp_path / "other-file").write_text("not ours")
    privileges.hand_over_sqlite(database, NOBODY)
    assert database.stat().st_uid == 65534
    assert tmp_path.stat().st_uid == os.getuid()
    assert (tmp_path / "other-file").stat().st_uid == os.getuid()


def test_group_only_or_postgresql_touches_no_file(tmp_path: Path):
    database = tmp_path / "fingerplat.db"
    database.write_bytes(b"")
    privileges.hand_over_sqlite(database, RunAs(None, "nogroup", None, 65534))
    privileges.hand_over_sqlite(None, NOBODY)
    assert database.stat().st_uid == os.getuid()
