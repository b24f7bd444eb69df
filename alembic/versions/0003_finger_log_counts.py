"""The finger log counts repeats: one row per user, channel and network a minute.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-07

A lookup used to be a row. Now the server keeps, for about a minute, one row
per (user, channel, network) with the number of lookups it stands for
(``count``): the first lookup is written within a second as before, repeats
only raise the count (fingerplat/service/finger_log.py). Existing rows are one
lookup each, hence the server default of 1.
"""

from __future__ import annotations

import sqlalchemy as sa

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("finger_log", sa.Column("count", sa.Integer, nullable=False,
                                          server_default="1"))
    if op.get_bind().dialect.name == "postgresql":
        # Room on each page, so raising a row's count is a HOT update
        # (no new index entries); pages written before keep their layout.
        op.execute("ALTER TABLE finger_log SET (fillfactor = 80)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE finger_log RESET (fillfactor)")
    # In place (SQLite >= 3.35 has DROP COLUMN), as 0002 does: no batch copy.
    op.execute('ALTER TABLE "finger_log" DROP COLUMN "count"')
