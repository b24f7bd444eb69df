"""``fingerplat db upgrade | current | downgrade REV``: the schema, by Alembic.

These are the only commands that work on a database without a current schema
(they are how one gets there), so they open an engine directly instead of
going through ``AppState.with_service``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from fingerplat.domain.errors import InvalidInput
from fingerplat.repository import migrations, roles
from fingerplat_cli.app import AppState, handle_errors, pass_state, run

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine


@click.group("db")
def command() -> None:
    """Create, inspect and migrate the database schema."""


@command.command("upgrade")
@click.option("--grant-to", "grant_to", metavar="ROLE",
              help="PostgreSQL: afterwards, grant the runtime role ROLE what `serve` needs "
                   "(append and read audit events only); run as the schema owner.")
@pass_state
@handle_errors
def upgrade(state: AppState, grant_to: str | None) -> None:
    """Migrate the schema to this release (creates it on an empty database)."""
    if grant_to is not None:
        roles.role_name(grant_to)

    async def _upgrade(engine: AsyncEngine) -> tuple[str | None, str]:
        before = await migrations.current_revision(engine)
        head = migrations.head_revision()
        if before != head:
            await migrations.upgrade(engine)
        if grant_to is not None:
            await roles.grant_runtime_role(engine, grant_to)
        return before, head

    before, head = run(state.with_engine(_upgrade))
    if before == head:
        click.echo(f"schema already current (revision {head})")
    else:
        click.echo(f"schema upgraded from {before or 'empty'} to {head}")
    if grant_to is not None:
        click.echo(f"grants for runtime role {grant_to} up to date")


@command.command("current")
@pass_state
@handle_errors
def current(state: AppState) -> None:
    """Print the schema revision of the database and whether it is current."""
    revision = run(state.with_engine(migrations.current_revision))
    head = migrations.head_revision()
    if revision == head:
        click.echo(f"{revision} (current)")
    elif revision is None:
        click.echo(f"none (empty database; run `fingerplat db upgrade` to create {head})")
    else:
        click.echo(f"{revision} (out of date: this release needs {head}; "
                   "run `fingerplat db upgrade`)")


@command.command("downgrade")
@click.argument("rev")
@pass_state
@handle_errors
def downgrade(state: AppState, rev: str) -> None:
    """Migrate the schema back to revision REV (`base` removes every table and its data)."""

    async def _downgrade(engine: AsyncEngine) -> str | None:
        from alembic.util.exc import CommandError

        try:
            await migrations.downgrade(engine, rev)
        except CommandError as error:
            raise InvalidInput(f"cannot downgrade to {rev!r}: {error}") from None
        return await migrations.current_revision(engine)

    after = run(state.with_engine(_downgrade))
    click.echo(f"schema downgraded to {after or 'base (empty)'}")
