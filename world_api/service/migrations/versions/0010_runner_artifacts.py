"""Strategy artifacts and runners: ``artifacts`` (what a runner runs, one per strategy),
``runners`` (each runner's last heartbeat) and ``runner_leases`` (which runner runs each
strategy until when). New tables only: a store made before keeps every row.

Revision ID: 0010_runner
Revises: 0009_records_market
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_runner"
down_revision = "0009_records_market"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("world", sa.Text(), primary_key=True),
        sa.Column("strategy_id", sa.Text(), primary_key=True),
        sa.Column("artifact_id", sa.Text(), nullable=False),
        sa.Column("graph_id", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("updated", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "runners",
        sa.Column("world", sa.Text(), primary_key=True),
        sa.Column("runner", sa.Text(), primary_key=True),
        sa.Column("seen", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
    )
    op.create_table(
        "runner_leases",
        sa.Column("world", sa.Text(), primary_key=True),
        sa.Column("strategy_id", sa.Text(), primary_key=True),
        sa.Column("runner", sa.Text(), nullable=False),
        sa.Column("expires", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("runner_leases")
    op.drop_table("runners")
    op.drop_table("artifacts")
