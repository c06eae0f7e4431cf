"""Add ``events.stage``: set on an event that moves a strategy between stages (backtest,
paper, live; see ``world_api.domain.stages``), NULL on activation and weight events. A
strategy's stage itself lives in its stored state (``strategy_state.state``, key ``stage``).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("stage", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("stage")
