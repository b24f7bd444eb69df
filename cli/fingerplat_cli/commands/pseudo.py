"""``fingerplat pseudo ...``: pseudo-users, names answered by code (help, recent, time...).

A pseudo-user answers finger and the web like a user but is never listed;
its kind is built in or comes from an installed package registered under the
``fingerplat.pseudo_users`` entry-point group. Its name is reserved: it can
be neither an existing user's nor taken by a user later (exit 4).
"""

from __future__ import annotations

import click

from fingerplat.domain.model import PseudoUser
from fingerplat.domain.text import printable
from fingerplat.service import FingerplatService
from fingerplat_cli.app import AppState, handle_errors, pass_state, run
from fingerplat_cli.output import print_json, print_table
from fingerplat_cli.tenants import tenant_label, tenant_option

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group("pseudo")
def command() -> None:
    """Add, list and remove pseudo-users (finger help, recent, time, installed kinds)."""


@command.command("add")
@click.argument("name")
@click.option("--kind", "kind", required=True, metavar="KIND",
              help="recent, help, time, or a kind an installed package provides.")
@tenant_option
@pass_state
@handle_errors
def add(state: AppState, name: str, kind: str, tenant: str | None) -> None:
    """Add pseudo-user NAME answered by KIND."""
    pseudo = run(state.with_service(
        lambda s: s.pseudo_users.add_pseudo_user(state.operator(), tenant, name, kind)))
    click.echo(printable(f"pseudo-user {pseudo.name} ({pseudo.kind}) added"
                         f"{tenant_label(tenant)}"))


@command.command("list")
@tenant_option
@json_option
@pass_state
@handle_errors
def list_(state: AppState, tenant: str | None, as_json: bool) -> None:
    """List a tenant's pseudo-users with their kinds."""

    async def _list(service: FingerplatService) -> tuple[str, list[PseudoUser], dict[str, str]]:
        resolved = await service.public.resolve_tenant(tenant)
        found = await service.pseudo_users.list_pseudo_users(state.operator(), resolved.slug)
        registry = service.pseudo_users.pseudo_kinds
        kinds = {name: kind.description for name, kind in registry.kinds.items()}
        return resolved.slug, found, kinds

    slug, found, kinds = run(state.with_service(_list))
    if as_json:
        print_json([{"name": p.name, "kind": p.kind, "tenant": slug,
                     "installed": p.kind in kinds, "created_at": p.created_at}
                    for p in found])
        return
    print_table(
        ["NAME", "KIND", "ANSWERS", "CREATED"],
        [[p.name, p.kind, kinds.get(p.kind, "(kind not installed)") or "-", p.created_at]
         for p in found],
        empty=f"no pseudo-users in tenant {slug} (add one with: fingerplat pseudo add help "
              "--kind help)",
    )


@command.command("remove")
@click.argument("name")
@tenant_option
@pass_state
@handle_errors
def remove(state: AppState, name: str, tenant: str | None) -> None:
    """Remove pseudo-user NAME (its name is free again)."""
    run(state.with_service(lambda s: s.pseudo_users.remove_pseudo_user(
        state.operator(), tenant, name)))
    click.echo(printable(f"pseudo-user {name.strip().lower()} removed{tenant_label(tenant)}"))
