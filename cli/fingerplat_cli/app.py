"""What every command shares: settings resolution, the operator context, error mapping.

Settings precedence (SPEC section 6): command-line options, then environment
variables, then the configuration file, then defaults. User errors become one
line on stderr and a non-zero exit code; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import asyncio
import getpass
import os
import sys
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from functools import wraps
from typing import Any, TypeVar

import click

from fingerplat import config as config_module
from fingerplat.config import Config
from fingerplat.domain.errors import (
    AuthenticationFailed,
    Conflict,
    FingerplatError,
    InvalidInput,
    NotFound,
    PermissionDenied,
    Unavailable,
    UserNotFound,
)
from fingerplat.domain.model import Channel, Context, Principal
from fingerplat.domain.text import printable
from fingerplat.repository.engine import check_url, create_engine, default_database_url
from fingerplat.service import FingerplatService

T = TypeVar("T")

# Exit codes, documented in the README: scripts may rely on them.
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
            self._config = config_module.load(self.config_path)
        return self._config

    @property
    def database_url(self) -> str:
        url = (
            self.database_url_option
            or os.environ.get(config_module.DATABASE_URL_ENV)
            or self.config.database_url
            or default_database_url()
        )
        return check_url(url)

    def operator(self) -> Context:
        return Context(Principal.operator(_os_user()), Channel.CLI)

    async def with_service(self, use: Callable[[FingerplatService], Awaitable[T]]) -> T:
        """Run ``use`` with a service over a migrated database, then close the pool."""
        engine = create_engine(self.database_url)
        try:
            service = FingerplatService(engine)
            await service.check_schema()
            return await use(service)
        finally:
            await engine.dispose()


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


pass_state = click.make_pass_decorator(AppState)


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine for a command; uvloop when installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def fail(message: str, code: int = 1) -> None:
    click.echo(f"fingerplat: {printable(message)}", err=True)
    sys.exit(code)


def user_error_message(error: FingerplatError) -> str:
    message = str(error)
    if isinstance(error, UserNotFound):
        tenant = "" if error.tenant_slug == "default" else f" --tenant {error.tenant_slug}"
        message += f" (add one with: fingerplat user add {error.username}{tenant})"
    return message


def handle_errors(func: Callable[..., T]) -> Callable[..., T]:
    """Turn domain errors into one stderr line and an exit code; never a traceback."""

    @wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        ctx = click.get_current_context()
        state = ctx.find_object(AppState)
        try:
            return func(*args, **kwargs)
        except FingerplatError as error:
            if state is not None and state.debug:
                raise
            fail(user_error_message(error), exit_code_for(error))
        except OSError as error:
            if state is not None and state.debug:
                raise
            fail(str(error), 1)
        raise AssertionError("unreachable")

    return wrapper
