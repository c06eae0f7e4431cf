"""Drop ``schema_version``: the Alembic version table (``alembic_version_world``) records the
schema's revision now.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("schema_version")


def downgrade() -> None:
    table = op.create_table("schema_version", sa.Column("version", sa.Integer(), nullable=False))
    op.bulk_insert(table, [{"version": 1}])
