"""``fingerplat user ...``: accounts, statuses and plans of one tenant's users.

``--tenant`` takes a slug or a domain and defaults to the default tenant, so
``fingerplat user add alice`` then ``fingerplat user set alice "away"`` just
works on a fresh installation.
"""

from __future__ import annotations

import sys
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import click

from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.expiry import Expiry
from fingerplat.domain.model import StatusChange, Tenant, User
from fingerplat.domain.rules import PLAN_MAX_BYTES
from fingerplat.domain.text import printable
from fingerplat_cli.app import AppState, handle_errors, pass_state, run
from fingerplat_cli.commands.admin import read_password
from fingerplat_cli.output import print_block, print_fields, print_json, print_table
from fingerplat_cli.tenants import tenant_label, tenant_option

if TYPE_CHECKING:
    from fingerplat.service import FingerplatService

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")

# Page size when walking a whole tenant for `user list`.
LIST_PAGE = 1000


def user_record(user: User, tenant_slug: str, *, with_plan: bool = True) -> dict[str, Any]:
    data: dict[str, Any] = {
        "username": user.username,
        "tenant": tenant_slug,
        "full_name": user.full_name,
        "office": user.office,
        "phone": user.phone,
        "project": user.project,
        "hidden": user.hidden,
        "finger_log": user.finger_log,
        "status": user.status,
        "status_set_at": user.status_set_at,
        "status_expires_at": user.status_expires_at,
        "created_at": user.created_at,
    }
    if with_plan:
        data["plan"] = user.plan
    return data


def change_record(change: StatusChange) -> dict[str, Any]:
    return {
        "status": change.text,
        "set_at": change.set_at,
        "actor": change.actor,
        "channel": change.channel,
        "expires_at": change.expires_at,
    }


def _history_text(change: StatusChange) -> str:
    if change.text is None:
        return "(cleared)"
    if change.expires_at is None:
        return change.text
    return f"{change.text} (until {change.expires_at.astimezone(UTC):%Y-%m-%d %H:%M:%SZ})"


@click.group("user")
def command() -> None:
    """Add, change, inspect and remove users; set statuses and plans."""


@command.command("add")
@click.argument("name")
@tenant_option
@click.option("--full-name", metavar="N", default="", help="The user's full name.")
@click.option("--office", metavar="O", default="", help="Office or location.")
@click.option("--phone", metavar="P", default="", help="Phone number.")
@click.option("--hidden", is_flag=True,
              help="Hide the user from every public view (like ~/.nofinger).")
@pass_state
@handle_errors
def add(state: AppState, name: str, tenant: str | None, full_name: str, office: str,
        phone: str, hidden: bool) -> None:
    """Add a user NAME."""
    user = run(state.with_service(lambda s: s.users.add_user(
        state.operator(), tenant, name, full_name=full_name, office=office, phone=phone,
        hidden=hidden,
    )))
    click.echo(printable(f"user {user.username} added{tenant_label(tenant)}"
                         + (" (hidden)" if user.hidden else "")))


@command.command("edit")
@click.argument("name")
@tenant_option
@click.option("--full-name", metavar="N", help="The user's full name.")
@click.option("--office", metavar="O", help="Office or location.")
@click.option("--phone", metavar="P", help="Phone number.")
@click.option("--project", metavar="TEXT", help="What the user works on (one line).")
@click.option("--hidden/--visible", default=None,
              help="Hide the user from every public view, or show them again.")
@click.option("--finger-log/--no-finger-log", default=None,
              help="Record who fingered this user (when the tenant allows it; default off).")
@pass_state
@handle_errors
def edit(state: AppState, name: str, tenant: str | None, full_name: str | None,
         office: str | None, phone: str | None, project: str | None,
         hidden: bool | None, finger_log: bool | None) -> None:
    """Change a user's profile (an empty value clears a field)."""
    if full_name is None and office is None and phone is None and project is None \
            and hidden is None and finger_log is None:
        raise InvalidInput("nothing to change: give --full-name, --office, --phone, "
                           "--project, --hidden/--visible or --finger-log/--no-finger-log")
    user = run(state.with_service(lambda s: s.users.edit_user(
        state.operator(), tenant, name, full_name=full_name, office=office, phone=phone,
        project=project, hidden=hidden, finger_log=finger_log,
    )))
    click.echo(printable(f"user {user.username} updated{tenant_label(tenant)}"))


@command.command("set")
@click.argument("name")
@click.argument("status")
@tenant_option
@click.option("--for", "for_", metavar="DURATION",
              help="The status expires after DURATION: 90s, 45m, 2h, 1h30m, 1d.")
@click.option("--until", metavar="TIME",
              help="The status expires at TIME: HH:MM (the next one in the tenant's "
                   "time zone) or RFC 3339 (2026-12-07T14:00:00Z).")
@pass_state
@handle_errors
def set_(state: AppState, name: str, status: str, tenant: str | None, for_: str | None,
         until: str | None) -> None:
    """Set the status of user NAME to STATUS (one line, at most 280 characters)."""
    if for_ is not None and until is not None:
        raise InvalidInput("give either --for or --until, not both")
    expires = (Expiry.duration(for_) if for_ is not None
               else Expiry.until(until) if until is not None else None)
    user = run(state.with_service(
        lambda s: s.users.set_status(state.operator(), tenant, name, status, expires=expires)
    ))
    moment = user.status_expires_at
    suffix = f" (until {moment.astimezone(UTC):%Y-%m-%d %H:%M:%SZ})" if moment else ""
    click.echo(printable(f"{user.username}: {user.status}{suffix}"))


@command.command("clear")
@click.argument("name")
@tenant_option
@pass_state
@handle_errors
def clear(state: AppState, name: str, tenant: str | None) -> None:
    """Clear the status of user NAME."""
    user = run(state.with_service(lambda s: s.users.clear_status(state.operator(), tenant, name)))
    click.echo(printable(f"{user.username}: status cleared"))


@command.command("show")
@click.argument("name")
@tenant_option
@json_option
@pass_state
@handle_errors
def show(state: AppState, name: str, tenant: str | None, as_json: bool) -> None:
    """Show a user's profile, status and plan (hidden users too)."""

    async def _show(service: FingerplatService) -> tuple[Tenant, User]:
        resolved = await service.public.resolve_tenant(tenant)
        return resolved, await service.users.get_user(state.operator(), resolved.slug, name)

    resolved, user = run(state.with_service(_show))
    if as_json:
        print_json(user_record(user, resolved.slug))
        return
    print_fields([
        ("login", user.username),
        ("tenant", resolved.slug),
        ("name", user.full_name or "-"),
        ("office", user.office or "-"),
        ("phone", user.phone or "-"),
        ("project", user.project or "-"),
        ("hidden", user.hidden),
        ("finger log", user.finger_log),
        ("status", user.status if user.status is not None else "-"),
        ("status set", user.status_set_at),
        ("status expires", user.status_expires_at or "-"),
        ("created", user.created_at),
    ])
    if user.plan:
        print_block("plan", user.plan)
    else:
        click.echo("plan:       -")


@command.command("history")
@click.argument("name")
@tenant_option
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True,
              metavar="N", help="How many changes to show, newest first.")
@json_option
@pass_state
@handle_errors
def history(state: AppState, name: str, tenant: str | None, limit: int, as_json: bool) -> None:
    """Show a user's status history, newest first: text, time, actor, channel."""
    changes = run(state.with_service(
        lambda s: s.users.history(state.operator(), tenant, name, limit)
    ))
    if as_json:
        print_json([change_record(c) for c in changes])
        return
    print_table(
        ["WHEN", "ACTOR", "CHANNEL", "STATUS"],
        [[c.set_at, c.actor, c.channel, _history_text(c)] for c in changes],
        empty="no status changes yet",
    )


@command.command("remove")
@click.argument("name")
@tenant_option
@pass_state
@handle_errors
def remove(state: AppState, name: str, tenant: str | None) -> None:
    """Remove user NAME with their status history, plan and tokens (audited)."""
    run(state.with_service(lambda s: s.users.remove_user(state.operator(), tenant, name)))
    click.echo(printable(f"user {name.strip().lower()} removed{tenant_label(tenant)}"))


def _read_plan(source: BinaryIO, label: str) -> str:
    """Read at most one byte past the limit, so a huge file is refused without loading it."""
    data = source.read(PLAN_MAX_BYTES + 1)
    if len(data) > PLAN_MAX_BYTES:
        raise InvalidInput(f"plan from {label} is longer than {PLAN_MAX_BYTES} bytes (16 KiB)")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise InvalidInput(f"plan from {label} is not UTF-8 text (byte {error.start})") from None


@command.command("plan")
@click.argument("name")
@click.argument("file", required=False, metavar="[FILE|-]")
@tenant_option
@pass_state
@handle_errors
def plan(state: AppState, name: str, file: str | None, tenant: str | None) -> None:
    """Set the plan of user NAME from FILE, or from standard input (`-` or no FILE).

    An empty plan clears it.
    """
    if file is None or file == "-":
        if sys.stdin.isatty():
            click.echo("reading the plan from standard input; end with Ctrl-D", err=True)
        text = _read_plan(sys.stdin.buffer, "standard input")
    else:
        path = Path(file)
        if path.is_dir():
            raise InvalidInput(f"{file} is a directory, not a plan file")
        with path.open("rb") as handle:
            text = _read_plan(handle, file)
    user = run(state.with_service(lambda s: s.users.set_plan(state.operator(), tenant, name, text)))
    size = len(user.plan.encode("utf-8"))
    click.echo(printable(f"{user.username}: plan set ({size} bytes)" if size
                         else f"{user.username}: plan cleared"))


@command.command("list")
@tenant_option
@json_option
@pass_state
@handle_errors
def list_(state: AppState, tenant: str | None, as_json: bool) -> None:
    """List a tenant's users (hidden ones included, marked) with their statuses."""

    async def _list(service: FingerplatService) -> tuple[Tenant, list[User]]:
        resolved = await service.public.resolve_tenant(tenant)
        users: list[User] = []
        cursor: str | None = None
        while True:
            page = await service.users.directory(resolved, ctx=state.operator(), limit=LIST_PAGE,
                                           cursor=cursor)
            users.extend(page.users)
            cursor = page.next_cursor
            if cursor is None:
                return resolved, users

    resolved, users = run(state.with_service(_list))
    if as_json:
        print_json([user_record(u, resolved.slug, with_plan=False) for u in users])
        return
    print_table(
        ["LOGIN", "NAME", "HIDDEN", "SET", "STATUS"],
        [[u.username, u.full_name or "-", u.hidden, u.status_set_at,
          u.status if u.status is not None else "-"] for u in users],
        empty=f"no users in tenant {resolved.slug} (add one with: fingerplat user add NAME"
              + (f" --tenant {resolved.slug})" if not resolved.is_default else ")"),
    )


# -- issue 16: who fingered me -------------------------------------------------------


@command.command("fingered")
@click.argument("name")
@tenant_option
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True,
              metavar="N", help="How many lookups to show, newest first.")
@json_option
@pass_state
@handle_errors
def fingered(state: AppState, name: str, tenant: str | None, limit: int, as_json: bool) -> None:
    """Show who fingered user NAME lately: time, channel and network (never an address).

    LOOKUPS: repeats through one channel from one network within about a
    minute of WHEN (the first) are one line with their number.

    Recorded only while both the tenant (tenant set --finger-log) and the user
    (user edit --finger-log) opted in; kept [privacy] finger_log_days days.
    """
    entries = run(state.with_service(
        lambda s: s.finger_log.fingered(state.operator(), tenant, name, limit)
    ))
    if as_json:
        print_json([{"at": e.at, "channel": e.channel, "network": e.network, "count": e.count}
                    for e in entries])
        return
    print_table(["WHEN", "CHANNEL", "NETWORK", "LOOKUPS"],
                [[e.at, e.channel, e.network, e.count] for e in entries],
                empty="nobody fingered this user lately (or the finger log is off)")


@command.command("passwd")
@click.argument("name")
@tenant_option
@pass_state
@handle_errors
def passwd(state: AppState, name: str, tenant: str | None) -> None:
    """Set the self-service password of user NAME (prompted twice, or two lines on stdin).

    The user then signs in at /login (or /t/<tenant>/login) to change their
    own status, plan and the profile fields the tenant allows. Their open
    self-service sessions end.
    """
    password = read_password(twice_from_stdin=True)
    user = run(state.with_service(
        lambda s: s.self_service.set_user_password(state.operator(), tenant, name, password)))
    click.echo(printable(f"password of {user.username} set{tenant_label(tenant)}"))
