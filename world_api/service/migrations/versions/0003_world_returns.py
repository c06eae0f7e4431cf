"""Add ``world_returns``: the world's realized return, one row per point in time, so a
restarted service gives the same world returns.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "world_returns",
        sa.Column("world", sa.Text(), primary_key=True),
        sa.Column("ts", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("ret", sa.DOUBLE_PRECISION(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("world_returns")
