"""``fingerplat audit``: the append-only trail of changes and refused attempts."""

from __future__ import annotations

import dataclasses
from typing import Any

import click

from fingerplat.domain.changes import describe_changes
from fingerplat.domain.errors import InvalidInput
from fingerplat.domain.model import AuditEvent, AuditQuery
from fingerplat_cli.app import AppState, fail, handle_errors, pass_state, run
from fingerplat_cli.output import print_json, print_table


def event_record(event: AuditEvent) -> dict[str, Any]:
    return dataclasses.asdict(event)


@click.group("audit", invoke_without_command=True)
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
@click.pass_context
@handle_errors
def command(ctx: click.Context, tenant: str | None, all_tenants: bool, username: str | None,
            action: str | None, limit: int, as_json: bool) -> None:
    """Show audit events, newest first: time, tenant, actor, channel, action, target.

    Events of a removed tenant keep its slug, labelled "(removed)"; a tenant
    created later with the same slug does not see them. `fingerplat audit
    verify` checks the hash chain of the trail.
    """
    if ctx.invoked_subcommand is not None:
        return
    state = ctx.find_object(AppState)
    assert state is not None
    if all_tenants and tenant is not None:
        raise InvalidInput("give either --tenant or --all, not both")
    query = AuditQuery(tenant=tenant, username=username, action=action, limit=limit)
    events = run(state.with_service(
        lambda s: s.audit.audit_log(state.operator(), query, all_tenants=all_tenants)
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


@command.command("verify")
@click.option("--tenant", metavar="T", help="Only this tenant's chain (slug or domain); "
              "default: every chain, removed tenants' and platform events included.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per chain.")
@pass_state
@handle_errors
def verify(state: AppState, tenant: str | None, as_json: bool) -> None:
    """Walk the audit hash chain(s): exit 0 when intact, 1 naming the first altered,
    inserted or removed event."""
    results = run(state.with_service(lambda s: s.audit.verify_audit(state.operator(), tenant)))
    total = sum(r.report.events for r in results)
    broken = [r for r in results if not r.intact]
    if as_json:
        print_json([{
            "chain": r.report.chain, "label": r.label, "events": r.report.events,
            "intact": r.intact, "head_hash": r.report.head_hash,
            "problem": None if r.intact else dataclasses.asdict(r.report.problem),  # type: ignore[arg-type]
        } for r in results])
    else:
        for r in results:
            if r.report.problem is None:
                click.echo(f"{r.label}: {r.report.events} events intact, head "
                           f"{r.report.head_hash[:16]}")
            else:
                click.echo(f"{r.label}: BROKEN: {r.report.problem.message}")
        if not broken:
            click.echo(f"{total} events verified")
    if broken:
        first = broken[0]
        problem = first.report.problem
        assert problem is not None
        fail(f"audit chain broken ({first.label}): {problem.message}", 1)
