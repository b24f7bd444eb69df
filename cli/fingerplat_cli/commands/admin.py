"""``fingerplat admin add | list | remove``: accounts for the admin web UI.

The password is never an argument (it would land in the shell history and in
``ps``): it is read from standard input when that is not a terminal (first
line), else prompted for twice without echo.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.model import Admin
from fingerplat.domain.text import printable
from fingerplat_cli.app import AppState, handle_errors, pass_state, run
from fingerplat_cli.output import print_json, print_table

# A password line longer than this is refused (the rules allow 1024 characters).
MAX_PASSWORD_LINE = 4096


def admin_record(admin: Admin) -> dict[str, Any]:
    return {
        "id": admin.id,
        "name": admin.name,
        "tenant": admin.tenant_slug,
        "role": "tenant_admin" if admin.tenant_id is not None else "platform_admin",
        "created_at": admin.created_at,
    }


def _stdin_line(which: str) -> str:
    line = sys.stdin.readline(MAX_PASSWORD_LINE + 1)
    if len(line) > MAX_PASSWORD_LINE:
        raise InvalidInput("password line on standard input is too long")
    password = line.removesuffix("\n").removesuffix("\r")
    if not password:
        raise InvalidInput(f"no password on standard input (give it as the {which} line)")
    return password


def read_password(*, twice_from_stdin: bool = False) -> str:
    """First line of stdin when piped, else a hidden prompt with confirmation.

    ``twice_from_stdin``: a piped password must come twice (two equal lines),
    as a terminal's prompt asks twice (``user passwd``).
    """
    if not sys.stdin.isatty():
        password = _stdin_line("first")
        if twice_from_stdin and _stdin_line("second") != password:
            raise InvalidInput("the two password lines on standard input differ")
        return password
    password: str = click.prompt("Password", hide_input=True, confirmation_prompt=True,
                                 err=True)
    return password


@click.group("admin")
def command() -> None:
    """Add, list and remove admin accounts for the web admin UI."""


@command.command("add")
@click.argument("name")
@click.option("--tenant", metavar="T",
              help="Make a tenant admin of this tenant (default: a platform admin).")
@pass_state
@handle_errors
def add(state: AppState, name: str, tenant: str | None) -> None:
    """Add admin account NAME; the password comes from stdin or a prompt."""
    password = read_password()
    admin = run(state.with_service(
        lambda s: s.credentials.add_admin(state.operator(), name, password, tenant_name=tenant)
    ))
    role = f"tenant admin of {admin.tenant_slug}" if admin.tenant_slug else "platform admin"
    click.echo(printable(f"admin {admin.name} added ({role})"))


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_state
@handle_errors
def list_(state: AppState, as_json: bool) -> None:
    """List admin accounts (never their password hashes)."""
    admins = run(state.with_service(lambda s: s.credentials.list_admins(state.operator())))
    if as_json:
        print_json([admin_record(a) for a in admins])
        return
    print_table(
        ["NAME", "ROLE", "TENANT", "CREATED"],
        [[a.name, "tenant admin" if a.tenant_id is not None else "platform admin",
          a.tenant_slug, a.created_at] for a in admins],
        empty="no admin accounts (add one with: fingerplat admin add NAME)",
    )


@command.command("remove")
@click.argument("name")
@pass_state
@handle_errors
def remove(state: AppState, name: str) -> None:
    """Remove admin account NAME (its sessions stop working)."""
    run(state.with_service(lambda s: s.credentials.remove_admin(state.operator(), name)))
    click.echo(printable(f"admin {name.strip().lower()} removed"))
