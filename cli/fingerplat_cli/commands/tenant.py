"""``fingerplat tenant add | list | show | set | remove``: the organisations hosted here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.model import Tenant
from fingerplat.domain.text import printable
from fingerplat.domain.visibility import PUBLIC_FIELDS
from fingerplat_cli.app import AppState, handle_errors, pass_state, run
from fingerplat_cli.output import print_fields, print_json, print_table

if TYPE_CHECKING:
    from fingerplat.service import FingerplatService

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def tenant_record(tenant: Tenant, users: int | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "slug": tenant.slug,
        "name": tenant.name,
        "domains": list(tenant.domains),
        "list_users": tenant.list_users,
        "forwarding": tenant.forwarding,
        "finger_log": tenant.finger_log,
        "default": tenant.is_default,
        "created_at": tenant.created_at,
        "timezone": tenant.timezone,
        "public_fields": _public_fields(tenant),
        "trusted_networks": list(tenant.trusted_networks),
        "rejected_networks": list(tenant.rejected_networks),
    }
    if users is not None:
        data["users"] = users
    return data


def _public_fields(tenant: Tenant) -> list[str]:
    return [f for f in PUBLIC_FIELDS if tenant.shows(f)]


@click.group("tenant")
def command() -> None:
    """Add, list, show, change and remove tenants."""


@command.command("add")
@click.argument("slug")
@click.option("--name", metavar="N", help="Display name (default: the slug).")
@click.option("--domain", "domains", metavar="D", multiple=True,
              help="A DNS domain routed to this tenant (repeatable).")
@pass_state
@handle_errors
def add(state: AppState, slug: str, name: str | None, domains: tuple[str, ...]) -> None:
    """Add a tenant SLUG."""
    tenant = run(state.with_service(
        lambda s: s.tenants.create_tenant(state.operator(), slug, name=name, domains=list(domains))
    ))
    suffix = f" (domains: {', '.join(tenant.domains)})" if tenant.domains else ""
    click.echo(printable(f"tenant {tenant.slug} added{suffix}"))


@command.command("list")
@json_option
@pass_state
@handle_errors
def list_(state: AppState, as_json: bool) -> None:
    """List every tenant."""
    tenants = run(state.with_service(lambda s: s.tenants.list_tenants(state.operator())))
    if as_json:
        print_json([tenant_record(t) for t in tenants])
        return
    print_table(
        ["SLUG", "NAME", "DEFAULT", "LIST USERS", "FORWARDING", "DOMAINS"],
        [[t.slug, t.name, t.is_default, t.list_users, t.forwarding, " ".join(t.domains)]
         for t in tenants],
    )


@command.command("show")
@click.argument("slug")
@json_option
@pass_state
@handle_errors
def show(state: AppState, slug: str, as_json: bool) -> None:
    """Show one tenant's name, domains and settings."""

    async def _show(service: FingerplatService) -> tuple[Tenant, int, tuple[str, ...]]:
        tenant = await service.tenants.get_tenant(state.operator(), slug)
        page = await service.users.directory(tenant, ctx=state.operator(), limit=1)
        return tenant, page.total, await service.self_service.self_edit_fields(tenant)

    tenant, users, self_edit = run(state.with_service(_show))
    if as_json:
        print_json({**tenant_record(tenant, users), "self_edit_fields": list(self_edit)})
        return
    print_fields([
        ("slug", tenant.slug),
        ("name", tenant.name),
        ("default", tenant.is_default),
        ("domains", " ".join(tenant.domains) or "-"),
        ("list users", tenant.list_users),
        ("forwarding", tenant.forwarding),
        ("finger log", tenant.finger_log),
        ("time zone", tenant.timezone),
        ("public fields", ",".join(_public_fields(tenant)) or "-"),
        ("trusted networks", " ".join(tenant.trusted_networks) or "-"),
        ("rejected networks", " ".join(tenant.rejected_networks) or "-"),
        ("users", users),
        ("created", tenant.created_at),
        ("self-edit fields", ",".join(self_edit) or "none"),
    ])


@command.command("set")
@click.argument("slug")
@click.option("--name", metavar="N", help="New display name.")
@click.option("--add-domain", "add_domains", metavar="D", multiple=True,
              help="Route this DNS domain to the tenant (repeatable).")
@click.option("--remove-domain", "remove_domains", metavar="D", multiple=True,
              help="Stop routing this DNS domain to the tenant (repeatable).")
@click.option("--list-users/--no-list-users", default=None,
              help="Answer the empty finger query (and the web directory) with a user list.")
@click.option("--forwarding/--no-forwarding", default=None,
              help="Allow finger forwarding (user@otherhost) for this tenant.")
@click.option("--finger-log/--no-finger-log", default=None,
              help="Let users who opt in see who fingered them (networks only; default off).")
@click.option("--self-edit-fields", metavar="LIST",
              help="Profile fields users may edit on their self-service page: a comma list "
                   "of full_name,office,phone,project, or none.")
@click.option("--timezone", metavar="ZONE",
              help="The tenant's IANA time zone (Europe/Paris; default UTC).")
@click.option("--public-fields", metavar="LIST",
              help=f"The fields public answers show, a comma list from {','.join(PUBLIC_FIELDS)}"
                   " (default: all).")
@click.option("--add-trusted-network", "add_trusted", metavar="CIDR", multiple=True,
              help="Give the user list only to this network and the other trusted ones "
                   "(repeatable).")
@click.option("--remove-trusted-network", "remove_trusted", metavar="CIDR", multiple=True,
              help="Remove a trusted network (repeatable).")
@click.option("--add-rejected-network", "add_rejected", metavar="CIDR", multiple=True,
              help="Refuse every answer of this tenant to this network (repeatable).")
@click.option("--remove-rejected-network", "remove_rejected", metavar="CIDR", multiple=True,
              help="Remove a rejected network (repeatable).")
@pass_state
@handle_errors
def set_(state: AppState, slug: str, name: str | None, add_domains: tuple[str, ...],
         remove_domains: tuple[str, ...], list_users: bool | None,
         forwarding: bool | None, finger_log: bool | None,
         self_edit_fields: str | None, timezone: str | None, public_fields: str | None,
         add_trusted: tuple[str, ...], remove_trusted: tuple[str, ...],
         add_rejected: tuple[str, ...], remove_rejected: tuple[str, ...]) -> None:
    """Change a tenant's name, domains or settings."""
    changes = _tenant_changes(
        name=name, add_domains=add_domains, remove_domains=remove_domains,
        list_users=list_users, forwarding=forwarding, finger_log=finger_log,
        timezone=timezone, public_fields=public_fields, add_trusted_networks=add_trusted,
        remove_trusted_networks=remove_trusted, add_rejected_networks=add_rejected,
        remove_rejected_networks=remove_rejected)
    if self_edit_fields is not None:
        fields = run(state.with_service(lambda s: s.self_service.set_self_edit_fields(
            state.operator(), slug, self_edit_fields)))
        click.echo(printable(f"tenant {slug}: users may edit {','.join(fields) or 'none'}"))
        if not changes:
            return
    if not changes:
        raise InvalidInput("nothing to change: give --name, --add-domain, --remove-domain, "
                           "--list-users/--no-list-users, --forwarding/--no-forwarding, "
                           "--finger-log/--no-finger-log, --self-edit-fields, --timezone, "
                           "--public-fields or a --add-/--remove-...-network")
    tenant = run(state.with_service(lambda s: s.tenants.update_tenant(
        state.operator(), slug, **changes)))
    click.echo(printable(_tenant_summary(tenant)))


def _tenant_changes(**options: object) -> dict[str, Any]:
    """The options given (a flag's None and a repeatable option's () mean "not given"),
    repeatable ones as lists, as ``update_tenant`` takes them."""
    return {key: list(value) if isinstance(value, tuple) else value
            for key, value in options.items() if value is not None and value != ()}


def _tenant_summary(tenant: Tenant) -> str:
    def on_off(flag: bool) -> str:
        return "on" if flag else "off"

    return (
        f"tenant {tenant.slug}: name {tenant.name!r}, "
        f"domains {' '.join(tenant.domains) or '-'}, "
        f"list users {on_off(tenant.list_users)}, "
        f"forwarding {on_off(tenant.forwarding)}, "
        f"finger log {on_off(tenant.finger_log)}, "
        f"time zone {tenant.timezone}, "
        f"public fields {','.join(_public_fields(tenant)) or '-'}, "
        f"trusted networks {' '.join(tenant.trusted_networks) or '-'}, "
        f"rejected networks {' '.join(tenant.rejected_networks) or '-'}"
    )


@command.command("remove")
@click.argument("slug")
@click.option("--yes", is_flag=True, help="Confirm: the tenant's users, statuses, plans "
              "and tokens are deleted (the audit trail is kept).")
@pass_state
@handle_errors
def remove(state: AppState, slug: str, yes: bool) -> None:
    """Remove a tenant and everything in it (needs --yes)."""
    if not yes:
        raise InvalidInput(f"removing tenant {slug!r} deletes its users, statuses, plans and "
                           "tokens: add --yes to confirm")
    run(state.with_service(lambda s: s.tenants.remove_tenant(state.operator(), slug)))
    click.echo(printable(f"tenant {slug} removed"))
