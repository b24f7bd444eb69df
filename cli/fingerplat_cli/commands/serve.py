"""``fingerplat serve``: run the finger, setter and web listeners until SIGTERM.

Settings: command-line options win over ``FINGERPLAT_DATABASE_URL``, which
wins over the configuration file, which wins over the defaults. Each
``--finger/--setter/--web`` option (repeatable) replaces that adapter's whole
``listen`` list from the file; ``--web ''`` (or ``--finger ''``...) turns the
listener off. Every bound address is printed on stdout, one flushed line each,
so a script or test can start ``serve`` with port 0 and read the real port.
"""

from __future__ import annotations

import sys

import click

from fingerplat import config as config_module
from fingerplat.config import Config, parse_address
from fingerplat_cli.app import AppState, handle_errors, pass_state, run


def _announce(line: str) -> None:
    """One status line on stdout, flushed at once even when stdout is a pipe."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _quiet(_line: str) -> None:
    """Workers other than the first: their addresses are the first one's."""


def _listen(values: tuple[str, ...], option: str) -> list[str] | None:
    """The addresses given for one adapter; None when the option was not used."""
    if not values:
        return None
    addresses = [v.strip() for v in values if v.strip()]
    for address in addresses:
        try:
            parse_address(address)
        except Exception as error:
            raise click.BadParameter(str(error), param_hint=option) from None
    return addresses


@click.command("serve")
@click.option("--finger", "finger", metavar="HOST:PORT", multiple=True,
              help="Finger listen address (repeatable; replaces [finger] listen; port 0: "
                   "a free port; '' turns finger off).")
@click.option("--setter", "setter", metavar="HOST:PORT", multiple=True,
              help="Setter listen address (repeatable; replaces [setter] listen; '' turns "
                   "the TCP setter off).")
@click.option("--web", "web", metavar="HOST:PORT", multiple=True,
              help="Web listen address (repeatable; replaces [web] listen; '' turns the "
                   "web listener off).")
@click.option("--user", "run_user", metavar="USER",
              help="After binding, drop privileges to this OS user (needs root).")
@click.option("--group", "run_group", metavar="GROUP",
              help="After binding, drop privileges to this OS group (needs root).")
@click.option("--config", "serve_config", metavar="FILE", type=click.Path(dir_okay=False),
              help="TOML configuration file (same as the global --config).")
@click.option("--log-format", "log_format", type=click.Choice(["text", "json"]),
              help="Log lines on stderr for a human (text) or one JSON object each "
                   "(replaces [log] format).")
@click.option("--workers", "workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Worker processes sharing the listen addresses (SO_REUSEPORT); about "
                   "one per core (docs/performance.md).")
@pass_state
@handle_errors
def command(state: AppState, finger: tuple[str, ...], setter: tuple[str, ...],
            web: tuple[str, ...], run_user: str | None, run_group: str | None,
            serve_config: str | None, log_format: str | None, workers: int) -> None:
    """Run the finger, setter and web servers (SIGTERM: finish in-flight work, exit 0).

    SIGHUP re-reads the configuration file; the options given here still win.
    """
    if serve_config is not None:
        state.use_config_file(serve_config)
    overrides = {
        "finger.listen": _listen(finger, "--finger"),
        "setter.listen": _listen(setter, "--setter"),
        "web.listen": _listen(web, "--web"),
        "log.format": log_format,
    }
    config: Config = config_module.with_overrides(state.config, **overrides)
    database_url = state.database_url
    config_path = state.config_path

    def reload() -> Config:
        """SIGHUP: the file as it is now, with this command line applied again."""
        return config_module.with_overrides(config_module.load(config_path), **overrides)

    # Imported here: the runtime (metrics, LISTEN/NOTIFY bridge) costs every
    # other command ~0.1 s of start-up it does not need.
    from fingerplat.server import runtime

    announce = _announce
    prebound = None
    if workers > 1:
        from fingerplat.server import workers as workers_module

        # Once, before forking: N workers must not race to create the SQLite file.
        run(runtime.check_database(config, database_url))
        role = workers_module.fork_workers(config, workers)
        if isinstance(role, workers_module.Supervisor):
            sys.exit(role.wait())
        config, prebound = role.config, role.prebound
        if role.index > 0:  # worker 0 prints the addresses and "ready" for all
            announce = _quiet
    run(runtime.serve(config, database_url, user=run_user, group=run_group,
                      announce=announce, reload=reload, prebound=prebound))
