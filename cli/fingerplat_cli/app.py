"""What every command shares: settings resolution, the operator context, error mapping.

Settings precedence (SPEC section 6): command-line options, then environment
variables, then the configuration file, then defaults. User errors become one
line on stderr and a non-zero exit code; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import asyncio
import gc
import getpass
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

from fingerplat import DATABASE_URL_ENV
from fingerplat.domain.errors import (
    AuthenticationFailed,
    Conflict,
    FingerplatError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    SchemaOutOfDate,
    Unavailable,
    UserNotFound,
)
from fingerplat.domain.model import Channel, Context, Principal
from fingerplat.domain.text import printable

# The database stack, the configuration model and the service are imported by the
# functions that use them: `fingerplat --help` and `--version` must not pay for them.
if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from fingerplat.bootstrap import DatabaseSettings
    from fingerplat.config import Config
    from fingerplat.service import FingerplatService

T = TypeVar("T")

# Exit codes, documented in the README and docs/cli.md: scripts may rely on them.
# Besides these: 1 for other errors, 70 for an internal error (a bug).
EXIT_CODES: dict[type[FingerplatError], int] = {
    InvalidInput: 2,
    NotFound: 3,
    Conflict: 4,
    PermissionDenied: 5,
    AuthenticationFailed: 5,
    Unavailable: 6,
}


def exit_code_for(error: FingerplatError) -> int:
    for kind in type(error).__mro__:
        if kind in EXIT_CODES:
            return EXIT_CODES[kind]
    return 1


@dataclass
class AppState:
    """Resolved once per invocation from options, environment and config file."""

    database_url_option: str | None = None
    config_path: str | None = None
    debug: bool = False
    _config: Config | None = field(default=None, repr=False)

    @property
    def config(self) -> Config:
        if self._config is None:
            from fingerplat import config as config_module

            self._config = config_module.load(self.config_path)
        return self._config

    def use_config_file(self, path: str) -> None:
        """A command's own ``--config`` (``serve --config``) replaces the global one."""
        self.config_path = path
        self._config = None

    @property
    def database_url(self) -> str:
        # A configuration file, when given, is always validated (an unknown key
        # is refused even if --database-url makes the file's URL irrelevant).
        from fingerplat.repository.engine import check_url, default_database_url

        file_url = self.config.database_url if self.config_path else None
        url = (
            self.database_url_option
            or os.environ.get(DATABASE_URL_ENV)
            or file_url
            or default_database_url()
        )
        return check_url(url)

    def operator(self) -> Context:
        return Context(Principal.operator(_os_user()), Channel.CLI)

    def database_settings(self) -> DatabaseSettings | None:
        """The ``[database]`` pool settings, or None for the engine defaults.

        Without a configuration file the engine's own defaults apply (the same
        numbers as the [database] defaults, a unit test keeps them equal), so a
        command does not load the configuration model just to read them.
        """
        return None if self.config_path is None else self.config.database

    def create_engine(self) -> AsyncEngine:
        """An engine for one command, with the configured connect/command timeouts."""
        from fingerplat.bootstrap import engine_for

        return engine_for(self.database_url, self.database_settings())

    async def with_engine(self, use: Callable[[AsyncEngine], Awaitable[T]]) -> T:
        """Run ``use`` with an engine on the configured database (no schema check)."""
        engine = self.create_engine()

        async def _use() -> T:
            try:
                return await use(engine)
            finally:
                await engine.dispose()

        return await _database_errors_translated(_use())

    async def with_service(self, use: Callable[[FingerplatService], Awaitable[T]]) -> T:
        """Run ``use`` with a service over a current schema, then close the pool.

        The service is the bootstrap's (fingerplat/bootstrap.py), prepared as
        ``serve`` prepares it: SQLite (the embedded default included) is
        created and migrated on first use, so ``fingerplat user add alice``
        works on a bare machine, and a note on stderr says where the file is.
        PostgreSQL is never migrated implicitly: an old schema is refused with
        a message naming ``fingerplat db upgrade``.
        """
        from fingerplat.bootstrap import wire

        wired = wire(self.database_url, self.database_settings())

        async def _use() -> T:
            try:
                ready = await wired.prepare()
                if ready.sqlite and ready.state != "using":
                    click.echo(f"fingerplat: {ready.line}", err=True)
                else:
                    self.say_which_database()
                if not ready.sqlite:
                    # Running nodes cache public reads: tell them what this command changes.
                    from fingerplat.service.event_bridge import send_to_nodes

                    send_to_nodes(wired.engine, wired.service.events)
                return await use(wired.service)
            finally:
                await wired.close()

        return await _database_errors_translated(_use())

    def say_which_database(self) -> None:
        """On a terminal, name the database a command used (one dim line on stderr).

        A second terminal without FINGERPLAT_DATABASE_URL silently meant the
        embedded SQLite file; this line makes that visible. Scripts and pipes
        (stderr not a terminal) never see it.
        """
        if sys.stderr.isatty():
            from fingerplat.repository.engine import describe_database

            click.secho(f"fingerplat: database: {describe_database(self.database_url)}",
                        err=True, dim=True)

    def safe_database_url(self) -> str | None:
        """The database URL with any password hidden, for error messages."""
        from fingerplat.repository.engine import safe_url

        try:
            return safe_url(self.database_url)
        except Exception:
            return None


async def _database_errors_translated(work: Awaitable[T]) -> T:
    """Await ``work``; a database failure becomes the domain error it means.

    Creating the engine stays outside (a SQLite file that cannot be made is
    an ``OSError`` about that file, not "database unreachable").
    """
    from fingerplat.repository.uow import translate_db_error

    try:
        return await work
    except FingerplatError:
        raise
    except Exception as error:
        mapped = translate_db_error(error)
        if mapped is not None:
            raise mapped from error
        raise


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


pass_state = click.make_pass_decorator(AppState)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine for a command; uvloop when installed.

    The console script starts with the cyclic GC off (:func:`fingerplat_cli.main.main`)
    while the program loads; the command's first step imports the rest of what
    it needs (the database stack, the service) before its first wait on I/O, and
    the GC is back on from that wait for the rest of the command, so a long one
    (an import, ``serve``) collects as usual. A no-op when the GC is already on.
    """

    async def collecting_from_first_wait() -> T:
        asyncio.get_running_loop().call_soon(gc.enable)
        return await coro

    try:
        import uvloop
    except ImportError:
        return asyncio.run(collecting_from_first_wait())
    return uvloop.run(collecting_from_first_wait())


def fail(message: str, code: int = 1) -> None:
    click.echo(f"fingerplat: {printable(message)}", err=True)
    sys.exit(code)


def user_error_message(error: FingerplatError, state: AppState | None = None) -> str:
    message = str(error)
    if isinstance(error, UserNotFound):
        tenant = "" if error.tenant_slug == "default" else f" --tenant {error.tenant_slug}"
        message += f" (add one with: fingerplat user add {error.username}{tenant})"
    elif (isinstance(error, Unavailable) and not isinstance(error, SchemaOutOfDate)
          and message.startswith("database unreachable")
          and state is not None):
        where = state.safe_database_url()
        if where:
            message += f" ({where})"
        if error.detail:
            message += f": {error.detail.splitlines()[0]}"
        if "does not exist" in message:
            message += ("; create the role and the database first "
                        "(README: Pointing it at PostgreSQL)")
    return message


def _database_error_message(error: Exception) -> str | None:
    """A driver error that is the user's to fix (no such database, bad password)."""
    from sqlalchemy import exc as sa_exc

    if isinstance(error, sa_exc.DBAPIError):
        original = error.orig if error.orig is not None else error
        first = str(original).strip().splitlines()[0] if str(original).strip() else ""
        return f"database error: {first or type(original).__name__}"
    if isinstance(error, sa_exc.SQLAlchemyError):
        return f"database error: {str(error).splitlines()[0]}"
    return None


def handle_errors(func: Callable[..., T]) -> Callable[..., T]:
    """Turn every error into one stderr line and an exit code; never a traceback.

    Domain errors exit with the code from :data:`EXIT_CODES`; operating-system
    errors (a file that cannot be read) and driver errors exit 1 or 6; anything
    else is a bug and says so, still in one line. ``--debug`` re-raises so the
    traceback is shown.
    """

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        ctx = click.get_current_context()
        state = ctx.find_object(AppState)
        debug = state is not None and state.debug
        try:
            return func(*args, **kwargs)
        except (click.exceptions.ClickException, click.exceptions.Abort,
                click.exceptions.Exit):
            raise
        except FingerplatError as error:
            if debug:
                raise
            fail(user_error_message(error, state), exit_code_for(error))
        except BrokenPipeError:
            # `fingerplat audit | head`: the reader left; stop quietly, as cat does.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            sys.exit(141)
        except OSError as error:
            if debug:
                raise
            fail(_os_error_message(error), 1)
        except Exception as error:
            if debug:
                raise
            described = _database_error_message(error)
            if described is not None:
                fail(described, EXIT_CODES[Unavailable])
            fail(f"internal error ({type(error).__name__}: {error}); "
                 "run with --debug for the traceback", 70)
        raise AssertionError("unreachable")

    return wrapper


def _os_error_message(error: OSError) -> str:
    if error.filename is not None and error.strerror:
        return f"{error.filename}: {error.strerror.lower()}"
    return error.strerror.lower() if error.strerror else str(error)
