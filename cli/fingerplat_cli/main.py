"""Entry point: ``fingerplat [--database-url URL] [--config FILE] [--debug] COMMAND``.

Start-up cost is the first thing a user notices: ``fingerplat --version`` and
``--help`` import no command module, and a command imports only its own
module (which imports the database stack only when it runs). The short help
of each command is written here so that ``--help`` needs none of them;
tests/unit/test_cli_startup.py checks it matches each command's docstring.
"""

from __future__ import annotations

import gc
import importlib
import logging
import sys

import click

from fingerplat import CONFIG_ENV, DATABASE_URL_ENV, __version__
from fingerplat_cli.app import AppState

# name -> (module under fingerplat_cli.commands, first paragraph of its help).
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("serve", "Run the finger, setter and web servers "
                       "(SIGTERM: finish in-flight work, exit 0)."),
    "db": ("db", "Create, inspect and migrate the database schema."),
    "tenant": ("tenant", "Add, list, show, change and remove tenants."),
    "user": ("user", "Add, change, inspect and remove users; set statuses and plans."),
    "pseudo": ("pseudo", "Add, list and remove pseudo-users (finger help, recent, time, "
                         "installed kinds)."),
    "token": ("token", "Create, list and revoke tokens for the setter, the JSON API and XML-RPC."),
    "admin": ("admin", "Add, list and remove admin accounts for the web admin UI."),
    "audit": ("audit", "Show audit events, newest first: time, tenant, actor, channel, action, "
                       "target."),
    "import": ("imports", "Import users and statuses from a users file, the local accounts or an "
                          "export."),
    "export": ("export", "Write every user of a tenant to standard output."),
    "finger": ("finger", "Ask a finger server about QUERY (user, user@host, /W user, or empty "
                         "for the list)."),
}


class LazyGroup(click.Group):
    """A group that imports a command's module only when that command runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(f"fingerplat_cli.commands.{entry[0]}")
        command: click.Command = module.command
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(len(name) for name in names)  # as click does
        rows = [(name, click.Command(name, help=COMMANDS[name][1]).get_short_help_str(limit))
                for name in names]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    if not debug and ctx.invoked_subcommand != "serve":
        # A command reports its own failure in one line; the library's warnings
        # (the same failure, logged for a server's operator) would repeat it.
        logging.getLogger("fingerplat").setLevel(logging.ERROR)


def main() -> None:
    """The ``fingerplat`` console script, with the cyclic GC kept out of start-up and exit.

    A command that opens the database loads about 500 modules; their functions,
    classes and SQL constructs (some 300,000 objects) live until the process
    ends. The cyclic GC would walk them over and over while they load, and the
    collections the interpreter runs as it shuts down would walk them all again:
    together a quarter of ``fingerplat user set``'s CPU time (bench/README.md,
    "CLI start"). So the GC is off while the program loads, back on from the
    moment the command first waits on I/O (:func:`fingerplat_cli.app.run`),
    and everything still alive at exit is frozen, so the exit collections skip
    it. Nothing is lost: the process is ending, and every file and connection
    a command opens is closed by the command itself, not by the GC.
    """
    gc.disable()
    try:
        cli.main(prog_name="fingerplat")
    except KeyboardInterrupt:
        click.echo("fingerplat: interrupted", err=True)
        sys.exit(130)
    finally:
        gc.freeze()
