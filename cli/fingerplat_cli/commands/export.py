"""``fingerplat export``: a tenant's users on standard output.

``--format json`` (the default) keeps everything (profile, hidden, status,
plan) and reads back with ``fingerplat import json``; ``--format users-file``
is the tutorial's ``user: status`` list and reads back with ``fingerplat
import users-file``. Hidden users are included: this is an operator's backup,
not a public view. Nothing is neutralised here, because the output is data
for a file or a pipe; stored text never contains control characters (the
rules refuse them), and JSON escapes them anyway.
"""

from __future__ import annotations

import click

from fingerplat.adapters.sources.export import render_json, render_users_file
from fingerplat_cli.app import AppState, handle_errors, pass_state, run


@click.command("export")
@click.option("--tenant", "tenant", metavar="T",
              help="Tenant slug or domain (default: the default tenant).")
@click.option("--format", "fmt", type=click.Choice(["json", "users-file"]), default="json",
              show_default=True, help="Output format.")
@pass_state
@handle_errors
def command(state: AppState, tenant: str | None, fmt: str) -> None:
    """Write every user of a tenant to standard output."""
    found, users = run(state.with_service(
        lambda s: s.imports.export_users(state.operator(), tenant)))
    render = render_json if fmt == "json" else render_users_file
    click.echo(render(users, tenant=found.slug), nl=False)
