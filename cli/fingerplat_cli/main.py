"""Entry point: ``fingerplat [--database-url URL] [--config FILE] [--debug] COMMAND``."""

from __future__ import annotations

import importlib
import sys

import click

from fingerplat import __version__
from fingerplat.config import CONFIG_ENV, DATABASE_URL_ENV
from fingerplat_cli.app import AppState

# Command modules, each exposing ``command``; the order is the order of --help.
COMMAND_MODULES = (
    "serve",
    "db",
    "tenant",
    "user",
    "token",
    "admin",
    "audit",
    "imports",
    "export",
    "finger",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--database-url", envvar=DATABASE_URL_ENV, metavar="URL",
              help="SQLAlchemy URL: sqlite+aiosqlite:///PATH or postgresql+asyncpg://... "
                   f"[env: {DATABASE_URL_ENV}]")
@click.option("--config", "config_path", envvar=CONFIG_ENV, metavar="FILE",
              type=click.Path(dir_okay=False),
              help=f"TOML configuration file [env: {CONFIG_ENV}]")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.version_option(__version__, prog_name="fingerplat")
@click.pass_context
def cli(ctx: click.Context, database_url: str | None, config_path: str | None,
        debug: bool) -> None:
    """fingerplat: a multi-tenant finger platform."""
    ctx.obj = AppState(database_url_option=database_url, config_path=config_path, debug=debug)


def _register() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(f"fingerplat_cli.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"fingerplat_cli.commands.{name}":
                continue  # a command group not built yet
            raise
        cli.add_command(module.command)


_register()


def main() -> None:
    try:
        cli.main(prog_name="fingerplat")
    except KeyboardInterrupt:
        click.echo("fingerplat: interrupted", err=True)
        sys.exit(130)
