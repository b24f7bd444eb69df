"""Creating the async engine for PostgreSQL (asyncpg) or SQLite (aiosqlite)."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from fingerplat.domain.errors import InvalidInput

log = logging.getLogger("fingerplat.database")

# The SQLite file holds password and token hashes, hidden users and the audit:
# nobody but the service's own user may read it (SPEC section 11).
PRIVATE_FILE_MODE = 0o600
PRIVATE_DIR_MODE = 0o700
SQLITE_SIDECARS = ("-wal", "-shm", "-journal")


def default_sqlite_path() -> Path:
    """Where the embedded database lives when no URL is configured.

    ``$XDG_DATA_HOME/fingerplat/fingerplat.db`` (``~/.local/share`` by default):
    a user-owned place that survives reboots, unlike the working directory.
    """
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "fingerplat" / "fingerplat.db"


def default_database_url() -> str:
    return f"sqlite+aiosqlite:///{default_sqlite_path()}"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for an in-memory database."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def describe_database(url: str) -> str:
    """Which database a URL names, for people: ``SQLite PATH`` or
    ``PostgreSQL user@host:port/database`` (never a password)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        return f"SQLite {path if path is not None else 'in memory'}"
    hosts = parsed.query.get("host")  # several hosts (failover) come as ?host=...
    where = parsed.host or (",".join(hosts) if isinstance(hosts, tuple) else hosts) or "localhost"
    port = f":{parsed.port}" if parsed.port else ""
    user = f"{parsed.username}@" if parsed.username else ""
    return f"PostgreSQL {user}{where}{port}/{parsed.database or ''}"


def check_url(url: str) -> str:
    """Refuse URLs for drivers fingerplat does not speak, naming the two that work."""
    try:
        parsed = make_url(url)
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse text
        raise InvalidInput(f"invalid database URL {url!r}: {exc}") from None
    if parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise InvalidInput(
            f"unsupported database URL scheme {parsed.drivername!r}: use "
            "sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB"
        )
    return url


def create_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    pool_timeout: float = 5.0,
    connect_timeout: float = 5.0,
    command_timeout: float = 10.0,
) -> AsyncEngine:
    """Create the engine with settings that keep the server responsive on faults.

    PostgreSQL connections get connect and command timeouts so a vanished
    server produces an error quickly instead of a hang; ``pool_pre_ping``
    replaces connections that died while the database was away.
    """
    check_url(url)
    kwargs: dict[str, Any] = {}
    if is_sqlite(url):
        path = sqlite_file(url)
        if path is not None:
            make_private(path)
        kwargs["connect_args"] = {"timeout": 15}
    else:
        kwargs.update(
            pool_pre_ping=True,  # SQLite skips it: a local file does not drop connections
            pool_size=pool_size,
            max_overflow=max_overflow,
            pool_timeout=pool_timeout,
            connect_args={"timeout": connect_timeout, "command_timeout": command_timeout},
        )
    engine = create_async_engine(url, **kwargs)
    if is_sqlite(url):
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def create_read_engine(
    url: str,
    *,
    pool_size: int = 10,
    max_overflow: int = 10,
    pool_timeout: float = 5.0,
    connect_timeout: float = 5.0,
    command_timeout: float = 10.0,
) -> AsyncEngine | None:
    """A second pool for the public reads of ``serve`` (None for an in-memory SQLite).

    Its connections run in autocommit mode: a public read is one statement
    (or two that need no common snapshot), so it needs no BEGIN and COMMIT,
    and a pool that never opens a transaction needs no rollback when a
    connection is returned. On PostgreSQL there is no ``pool_pre_ping``
    either, so the statement itself is the only round trip: five fewer per
    read than a unit of work (a pre-ping outside autocommit is BEGIN, a ping
    and ROLLBACK). A connection that died while the database was away fails
    its statement instead of its ping; :func:`fingerplat.repository.uow.run_read`
    then retries the read once on a fresh connection. The application name
    ``fingerplat-read`` tells these connections apart in ``pg_stat_activity``.
    On SQLite each saved step is a hop to aiosqlite's thread.
    """
    check_url(url)
    common: dict[str, Any] = {"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None}
    if is_sqlite(url):
        path = sqlite_file(url)
        if path is None:
            return None  # a second engine would open a second, empty database
        make_private(path)
        engine = create_async_engine(url, connect_args={"timeout": 15}, **common)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    return create_async_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_timeout=pool_timeout,
        connect_args={
            "timeout": connect_timeout,
            "command_timeout": command_timeout,
            "server_settings": {"application_name": READ_APPLICATION_NAME},
        },
        **common,
    )


READ_APPLICATION_NAME = "fingerplat-read"


def make_private(database: Path) -> None:
    """Create the SQLite file mode 0600 in a 0700 directory; tighten one found looser.

    A directory made here is 0700; so is the embedded default's own directory
    (``~/.local/share/fingerplat``) when it is found looser. A directory the
    operator chose and made is left as it is (it may be shared), but the
    files in it are ours: the database and its ``-wal``/``-shm`` files are
    tightened to 0600 with a WARNING naming each one. SQLite creates the
    ``-wal`` and ``-shm`` files with the database file's mode, so a private
    database keeps them private. Every step is best effort: when the folder
    cannot be made, connecting fails later and says so.
    """
    directory = database.parent
    try:
        if not directory.exists():
            directory.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileExistsError):  # another process was first
                directory.mkdir(mode=PRIVATE_DIR_MODE)
                os.chmod(directory, PRIVATE_DIR_MODE)  # whatever the umask took away or left
        elif _is_default_directory(directory):
            _tighten(directory, PRIVATE_DIR_MODE, "directory")
        if not database.exists():
            with contextlib.suppress(FileExistsError):  # then tightened below like any other
                fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
                os.close(fd)  # an empty file is an empty SQLite database
    except OSError as error:
        log.warning("database: cannot create %s privately: %s", database, error)
        return
    for path in (database, *(Path(f"{database}{suffix}") for suffix in SQLITE_SIDECARS)):
        _tighten(path, PRIVATE_FILE_MODE, "file")


def _is_default_directory(directory: Path) -> bool:
    try:
        return directory.resolve() == default_sqlite_path().parent.resolve()
    except (OSError, RuntimeError):  # no home directory to compare with
        return False


def _tighten(path: Path, mode: int, what: str) -> None:
    """Take group and other permissions away from ``path`` when it has any."""
    try:
        current = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    except OSError as error:
        log.warning("database: cannot check the mode of %s: %s", path, error)
        return
    if not current & 0o077:
        return
    try:
        os.chmod(path, current & mode)
    except OSError as error:
        log.warning("database: %s %s is mode %04o (readable by other users) and cannot be "
                    "tightened: %s", what, path, current, error)
        return
    log.warning("database: %s %s was mode %04o (readable by other users); now %04o",
                what, path, current, current & mode)

# Execution option a unit of work sets to choose how a SQLite transaction starts.
SQLITE_BEGIN_OPTION = "fingerplat_sqlite_begin"


def _sqlite_begin(conn: Any) -> None:
    """Start every SQLite transaction ourselves (the driver's own BEGIN is turned off).

    The driver would only begin before the first INSERT/UPDATE/DELETE, so the
    reads of a use case (the permission check) ran outside its transaction.
    Units of work that write ask for ``BEGIN IMMEDIATE``: they take the write
    lock up front (waiting up to busy_timeout) instead of failing with
    SQLITE_BUSY when a read transaction later tries to become a write one.
    """
    conn.exec_driver_sql(conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "BEGIN"))


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # no implicit BEGIN: see _sqlite_begin
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.close()
