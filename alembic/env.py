"""Alembic environment: runs the migrations over the async engine fingerplat uses.

``fingerplat db upgrade`` (and ``serve`` on SQLite) call Alembic with a
configuration built in code (see fingerplat/repository/migrations.py); the
connection to use arrives in ``config.attributes["connection"]``.
"""

from __future__ import annotations

from alembic import context
from fingerplat.repository.schema import metadata

target_metadata = metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `fingerplat db upgrade`")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline (SQL script) migrations are not supported")
run_migrations_online()
