"""Creating the async engine for PostgreSQL (asyncpg) or SQLite (aiosqlite)."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import stat
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
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


# PostgreSQL's default port: a host listed without one in a multi-host URL gets it.
DEFAULT_POSTGRES_PORT = 5432
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][\w+.-]*)://(?P<rest>.*)$", re.DOTALL)


def _split_authority(rest: str) -> tuple[str, str, str]:
    """``user:pw@hosts/db?query`` -> (``user:pw@``, ``hosts``, ``/db?query``).

    The user information ends at the first ``@`` as in SQLAlchemy's own
    parser (a user name holds no ``/`` or ``:``, a password no ``@``).
    """
    auth = ""
    at = rest.find("@")
    if at >= 0 and not re.search(r"[/?]", rest[:at].partition(":")[0]):
        auth, rest = rest[: at + 1], rest[at + 1:]
    end = len(rest)
    for stop in ("/", "?"):
        index = rest.find(stop)
        if index >= 0:
            end = min(end, index)
    return auth, rest[:end], rest[end:]


def _host_port(spec: str) -> tuple[str, int]:
    """One entry of a host list: ``host`` or ``host:port`` (the port defaulting to 5432)."""
    host, _, port = spec.strip().partition(":")
    if not host or spec.startswith("[") or ":" in port:
        raise InvalidInput(
            f"invalid host {spec.strip()!r} in the database URL's host list: write "
            "HOST or HOST:PORT (IPv6 addresses cannot be listed: give them a host name)"
        )
    if not port:
        return host, DEFAULT_POSTGRES_PORT
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise InvalidInput(f"invalid port {port!r} for host {host!r} in the database URL")
    return host, int(port)


def normalize_url(url: str) -> str:
    """The SPEC's multi-host form rewritten into the one SQLAlchemy hands to asyncpg.

    ``postgresql+asyncpg://u@h1,h2:5433/db?target_session_attrs=read-write``
    (libpq's form) is not understood by SQLAlchemy: it reads ``h1,h2`` as one
    host name, and a port in the list breaks its port parser. Its own form is
    ``?host=h1:5432&host=h2:5433`` with every port given, and that is what
    this returns (a host without a port gets 5432). Every other URL,
    including SQLAlchemy's own multi-host forms, comes back unchanged; the
    other query parameters (``target_session_attrs``) are kept as written
    and reach asyncpg.connect.
    """
    match = _SCHEME.match(url)
    if match is None:
        return url
    auth, hosts, tail = _split_authority(match["rest"])
    if "," not in hosts:
        return url
    pairs = [_host_port(spec) for spec in hosts.split(",")]
    path, question, query = tail.partition("?")
    if re.search(r"(^|&)(host|port)=", query):
        raise InvalidInput("the database URL lists hosts twice: before the database name "
                           "and as ?host= or ?port=; use one form")
    listed = "&".join(f"host={host}:{port}" for host, port in pairs)
    query = f"{listed}&{query}" if question and query else listed
    return f"{match['scheme']}://{auth}{path or '/'}?{query}"


def _parse(url: str) -> URL:
    return make_url(normalize_url(url))


def database_hosts(url: str) -> list[str]:
    """Every ``host:port`` a PostgreSQL URL names, in the order they are tried."""
    parsed = _parse(url)
    listed = parsed.query.get("host")
    if isinstance(listed, tuple):
        return list(listed)
    if isinstance(listed, str) and listed:
        ports = str(parsed.query.get("port") or "").split(",")
        hosts = listed.split(",")
        if len(ports) == len(hosts):
            return [f"{host}:{port}" for host, port in zip(hosts, ports, strict=True)]
        return hosts
    host = parsed.host or "localhost"
    return [f"{host}:{parsed.port}" if parsed.port else host]


def is_sqlite(url: str) -> bool:
    return _parse(url).get_backend_name() == "sqlite"


def sqlite_file(url: str) -> Path | None:
    """The file behind a SQLite URL, or None for an in-memory database."""
    parsed = _parse(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return None
    if parsed.database == ":memory:":
        return None
    return Path(parsed.database)


def describe_database(url: str) -> str:
    """Which database a URL names, for people: ``SQLite PATH`` or
    ``PostgreSQL user@host:port/database`` (never a password); several hosts
    (failover) are listed ``h1:p1,h2:p2``, followed by the target when one
    is set (``target_session_attrs=read-write``)."""
    parsed = _parse(url)
    if parsed.get_backend_name() == "sqlite":
        path = sqlite_file(url)
        return f"SQLite {path if path is not None else 'in memory'}"
    where = ",".join(database_hosts(url))
    user = f"{parsed.username}@" if parsed.username else ""
    target = parsed.query.get("target_session_attrs")
    suffix = f" (target_session_attrs={target})" if isinstance(target, str) else ""
    return f"PostgreSQL {user}{where}/{parsed.database or ''}{suffix}"


def safe_url(url: str) -> str:
    """The URL for messages and logs: the password replaced by ``***``."""
    try:
        return _render_host_list(_parse(url), hide_password=True)
    except Exception:  # unparseable: show nothing of it rather than a password
        return "(unparseable database URL)"


# asyncpg.connect's own values (libpq has the same names).
TARGET_SESSION_ATTRS = ("any", "primary", "standby", "prefer-standby", "read-write",
                        "read-only")


def check_url(url: str) -> str:
    """Refuse URLs for drivers fingerplat does not speak, naming the two that work.

    Returns the URL to use: a libpq-style host list is rewritten into
    SQLAlchemy's form (:func:`normalize_url`). Errors never show a password.
    """
    try:
        parsed = _parse(url)
    except InvalidInput:
        raise
    except Exception as exc:  # sqlalchemy raises ArgumentError with a terse text
        shown = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
        raise InvalidInput(f"invalid database URL {shown!r}: {exc}") from None
    if parsed.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        raise InvalidInput(
            f"unsupported database URL scheme {parsed.drivername!r}: use "
            "sqlite+aiosqlite:///PATH or postgresql+asyncpg://USER@HOST/DB"
        )
    if parsed.drivername == "postgresql+asyncpg":
        target = parsed.query.get("target_session_attrs")
        if target is not None and target not in TARGET_SESSION_ATTRS:
            raise InvalidInput(f"invalid target_session_attrs {target!r} in the database "
                               f"URL: use one of {', '.join(TARGET_SESSION_ATTRS)}")
        try:  # what SQLAlchemy will hand asyncpg: refuses a host list missing a port
            parsed.get_dialect()().create_connect_args(parsed)
        except Exception as exc:
            raise InvalidInput(f"invalid database URL {safe_url(url)!r}: {exc}") from None
    return normalize_url(url)


def asyncpg_dsn(url: URL) -> str:
    """A SQLAlchemy URL as a DSN that asyncpg.connect understands, every host included.

    asyncpg keeps only the last of repeated ``?host=`` parameters, so the
    host list goes back before the database name (``h1:p1,h2:p2``), where
    asyncpg tries each in turn with ``target_session_attrs``.
    """
    return _render_host_list(url.set(drivername="postgresql"), hide_password=False)


def _render_host_list(url: URL, *, hide_password: bool) -> str:
    """The URL as text with a ``?host=h1:p1&host=h2:p2`` list written ``h1:p1,h2:p2``."""
    listed = url.query.get("host")
    if not isinstance(listed, tuple):
        return url.render_as_string(hide_password=hide_password)
    rendered = url.difference_update_query(["host"]).render_as_string(
        hide_password=hide_password)
    scheme, _, rest = rendered.partition("://")
    auth, _hosts, tail = _split_authority(rest)
    return f"{scheme}://{auth}{','.join(listed)}{tail}"


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
    url = check_url(url)
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
    url = check_url(url)
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
