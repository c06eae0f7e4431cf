"""The world's realized return from its book: ``world_returns.source`` says where each point
comes from, ``records`` (summed from the strategies' paper and live returns, every point
before this revision) or ``book`` (the book's marked-to-market return, posted to
``POST /worlds/{world}/book/returns``). A store made before keeps every point, as records.

Revision ID: 0011_book_returns
Revises: 0010_runner
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_book_returns"
down_revision = "0010_runner"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("world_returns") as batch:
        batch.add_column(
            sa.Column("source", sa.Text(), nullable=False, server_default=sa.text("'records'"))
        )


def downgrade() -> None:
    with op.batch_alter_table("world_returns") as batch:
        batch.drop_column("source")
