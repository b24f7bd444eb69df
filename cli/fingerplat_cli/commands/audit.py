"""``fingerplat audit``: the append-only trail of changes and refused attempts."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from fingerplat.domain.changes import describe_changes
from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.model import AuditEvent, AuditQuery
from fingerplat_cli.app import AppState, handle_errors, pass_state, run
from fingerplat_cli.output import print_json, print_table


def event_record(event: AuditEvent) -> dict[str, Any]:
    return dataclasses.asdict(event)


@click.command("audit")
@click.option("--tenant", metavar="T", help="Tenant slug or domain (default: the default "
              "tenant).")
@click.option("--all", "all_tenants", is_flag=True,
              help="Every tenant, and platform-wide events (tenant '-').")
@click.option("--user", "username", metavar="NAME", help="Only events about this user.")
@click.option("--action", metavar="A", help="Only this action, e.g. status.set, user.create, "
              "token.create, auth.token.")
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True,
              metavar="N", help="How many events, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with before/after).")
@pass_state
@handle_errors
def command(state: AppState, tenant: str | None, all_tenants: bool, username: str | None,
            action: str | None, limit: int, as_json: bool) -> None:
    """Show audit events, newest first: time, tenant, actor, channel, action, target."""
    if all_tenants and tenant is not None:
        raise InvalidInput("give either --tenant or --all, not both")
    query = AuditQuery(tenant=tenant, username=username, action=action, limit=limit)
    events = run(state.with_service(
        lambda s: s.audit_log(state.operator(), query, all_tenants=all_tenants)
    ))
    if as_json:
        print_json([event_record(e) for e in events])
        return
    print_table(
        ["TIME", "TENANT", "ACTOR", "CHANNEL", "ACTION", "TARGET", "OUTCOME", "DETAIL"],
        [[e.at, e.tenant_label, e.actor, e.channel, e.action, e.target, e.outcome,
          _detail(e)] for e in events],
        empty="no audit events match",
    )


def _detail(event: AuditEvent) -> str:
    """What changed in words (``status: away → giving a talk``), then any note."""
    changes = describe_changes(event.before, event.after)
    return "; ".join(part for part in (changes, event.detail) if part)
