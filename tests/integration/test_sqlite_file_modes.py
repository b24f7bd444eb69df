"""Issue 12 item 11: the SQLite database, -wal and -shm were 0644 in a 0755 directory.

Every local user could read the password and token hashes, hidden users and
the audit. Now the files are created 0600 in a 0700 directory, and files
found looser are tightened with a WARNING (README "Choices").
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from fingerplat.repository import migrations
from fingerplat.repository.engine import create_engine, create_read_engine


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    """The usual umask 022, which made the files world-readable."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


async def use(url: str) -> None:
    """Migrate and write, keeping the engine open: the -wal and -shm files exist."""
    engine = create_engine(url)
    read = create_read_engine(url)
    try:
        await migrations.upgrade(engine)
        async with engine.begin() as conn:
            await conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS probe (x)")
            await conn.exec_driver_sql("INSERT INTO probe VALUES (1)")
        assert read is not None
        async with read.connect() as conn:
            await conn.exec_driver_sql("SELECT count(*) FROM probe")
        database = Path(url.removeprefix("sqlite+aiosqlite:///"))
        for suffix in ("", "-wal", "-shm"):
            path = Path(f"{database}{suffix}")
            assert path.exists(), path
            assert mode(path) == 0o600, (path, oct(mode(path)))
    finally:
        if read is not None:
            await read.dispose()
        await engine.dispose()


async def test_a_new_database_is_private(tmp_path: Path, loose_umask: None) -> None:
    database = tmp_path / "made" / "here" / "fingerplat.db"
    await use(f"sqlite+aiosqlite:///{database}")
    assert mode(database.parent) == 0o700
    assert mode(database) == 0o600


async def test_the_embedded_default_directory_is_private(
    tmp_path: Path, loose_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    from fingerplat.repository.engine import default_database_url, default_sqlite_path

    await use(default_database_url())
    assert mode(default_sqlite_path().parent) == 0o700
    # Found looser later (an older release made it 0755): tightened again.
    os.chmod(default_sqlite_path().parent, 0o755)
    await use(default_database_url())
    assert mode(default_sqlite_path().parent) == 0o700


async def test_a_database_found_readable_is_tightened_with_a_warning(
    tmp_path: Path, loose_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    database = shared / "old.db"
    await use(f"sqlite+aiosqlite:///{database}")
    os.chmod(database, 0o644)  # as an older release left it (-wal and -shm follow it)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="fingerplat.database"):
        await use(f"sqlite+aiosqlite:///{database}")
    warned = [r.getMessage() for r in caplog.records if r.name == "fingerplat.database"]
    assert any(f"{database} was mode 0644" in m and "now 0600" in m for m in warned), warned
    assert mode(shared) == 0o755  # a directory the operator made is theirs
