"""A world's market: ``markets`` (world, version, body, created), one row per version of it,
as for the policy (see ``world_api.domain.market``). A store made before has no markets:
its worlds have none, and accept any symbols, as before.

Revision ID: 0009_records_market
Revises: 0008_records
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_records_market"
down_revision = "0008_records"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "markets",
        sa.Column("world", sa.Text(), primary_key=True),
        sa.Column("version", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("markets")
