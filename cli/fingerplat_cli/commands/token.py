"""``fingerplat token create | list | revoke``: API/setter tokens.

``token create`` prints the token alone on standard output so that
``TOKEN=$(fingerplat token create --user alice)`` works; its id and the
"shown once" warning go to standard error. Only a hash is stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from fingerplat.domain import rules
from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.model import Token, TokenScope
from fingerplat.domain.text import printable
from fingerplat_cli.app import AppState, handle_errors, pass_state, run
from fingerplat_cli.output import format_time, print_json, print_table

if TYPE_CHECKING:
    from fingerplat.service import FingerplatService


def token_record(token: Token) -> dict[str, Any]:
    return {
        "id": token.id,
        "scope": token.scope.value,
        "tenant": token.tenant_slug,
        "user": token.username,
        "created_at": token.created_at,
        "created_by": token.created_by,
        "expires_at": token.expires_at,
        "revoked_at": token.revoked_at,
        "last_used_at": token.last_used_at,
    }


def describe(token: Token) -> str:
    if token.scope is TokenScope.USER:
        return f"user {token.username} in tenant {token.tenant_slug}"
    if token.scope is TokenScope.TENANT:
        return f"tenant admin of {token.tenant_slug}"
    return "platform admin"


@click.group("token")
def command() -> None:
    """Create, list and revoke tokens for the setter, the JSON API and XML-RPC."""


@command.command("create")
@click.option("--tenant", metavar="T", help="Tenant slug or domain (default: the default "
              "tenant).")
@click.option("--user", "username", metavar="NAME",
              help="A token for this user: may set only their own status and plan.")
@click.option("--tenant-admin", is_flag=True, help="A token that administers the tenant.")
@click.option("--platform", is_flag=True, help="A platform-admin token (every tenant).")
@click.option("--expires", type=int, metavar="DAYS",
              help="Expire after DAYS days (default: never).")
@pass_state
@handle_errors
def create(state: AppState, tenant: str | None, username: str | None, tenant_admin: bool,
           platform: bool, expires: int | None) -> None:
    """Create a token; print it once on standard output."""
    chosen = [flag for flag, on in (("--user", username is not None),
                                    ("--tenant-admin", tenant_admin),
                                    ("--platform", platform)) if on]
    if len(chosen) != 1:
        raise InvalidInput("choose exactly one of --user NAME, --tenant-admin, --platform"
                           + (f" (got {' and '.join(chosen)})" if chosen else ""))
    if platform and tenant is not None:
        raise InvalidInput("a --platform token belongs to no tenant: drop --tenant")
    scope = (TokenScope.USER if username is not None
             else TokenScope.TENANT if tenant_admin else TokenScope.PLATFORM)
    issued = run(state.with_service(lambda s: s.credentials.create_token(
        state.operator(), scope, tenant_name=tenant, username=username, expires_days=expires,
    )))
    token = issued.token
    expiry = f", expires {format_time(token.expires_at)}" if token.expires_at else ""
    click.echo(printable(f"token {token.id} created for {describe(token)}{expiry}"), err=True)
    click.echo("this token is shown once: store it now (only a hash is kept)", err=True)
    click.echo(issued.secret)


@command.command("list")
@click.option("--tenant", metavar="T", help="Tenant slug or domain (default: the default "
              "tenant).")
@click.option("--all", "all_tenants", is_flag=True,
              help="Every token of every tenant, platform tokens included.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_state
@handle_errors
def list_(state: AppState, tenant: str | None, all_tenants: bool, as_json: bool) -> None:
    """List tokens (never their secrets): scope, owner, expiry, revocation, last use."""
    if all_tenants and tenant is not None:
        raise InvalidInput("give either --tenant or --all, not both")

    async def _list(service: FingerplatService) -> list[Token]:
        return await service.credentials.list_tokens(
            state.operator(), tenant, all_tenants=all_tenants)

    tokens = run(state.with_service(_list))
    if as_json:
        print_json([token_record(t) for t in tokens])
        return
    print_table(
        ["ID", "SCOPE", "TENANT", "USER", "CREATED", "EXPIRES", "REVOKED", "LAST USED",
         "CREATED BY"],
        [[t.id, t.scope.value, t.tenant_slug, t.username, t.created_at, t.expires_at,
          t.revoked_at, t.last_used_at, t.created_by] for t in tokens],
        empty="no tokens",
    )


@command.command("revoke")
@click.argument("token_id", metavar="ID")
@pass_state
@handle_errors
def revoke(state: AppState, token_id: str) -> None:
    """Revoke token ID (the number shown by `token create` and `token list`)."""
    text = token_id.strip().removeprefix("token:")
    if not rules.ascii_digits(text) or len(text) > 18:
        raise InvalidInput(f"invalid token id {token_id[:40]!r}: expected a number "
                           "from `fingerplat token list`")
    token = run(state.with_service(lambda s: s.credentials.revoke_token(
        state.operator(), int(text))))
    click.echo(printable(f"token {token.id} revoked ({describe(token)})"))
