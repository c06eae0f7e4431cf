"""The order store's first schema: the tables the store made before it had migrations
(``CREATE TABLE IF NOT EXISTS``), so a store made by that code is left as it is and a new
one gets the same tables.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _tables() -> list[tuple[str, list[sa.SchemaItem]]]:
    def col(name: str, type_: type, **kw: object) -> sa.Column:
        kw.setdefault("nullable", False)
        return sa.Column(name, type_(), **kw)

    def serial() -> sa.Column:
        return sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                         primary_key=True)

    text, bigint, integer, double = sa.Text, sa.BigInteger, sa.Integer, sa.DOUBLE_PRECISION
    zero = sa.text("0")
    return [
        ("orders", [serial(), col("key", text, unique=True), col("world", text),
                    col("strategy_id", text), col("symbol", text), col("ts", bigint),
                    col("target_weight", double), col("target_qty", double),
                    col("reason", text), col("created", bigint),
                    col("filled", integer, server_default=zero),
                    col("published", integer, server_default=zero)]),
        ("fills", [serial(), col("order_key", text, unique=True), col("world", text),
                   col("strategy_id", text), col("symbol", text), col("ts", bigint),
                   col("qty", double), col("price", double), col("fee", double),
                   col("created", bigint, server_default=zero),
                   col("published", integer, server_default=zero)]),
        ("positions", [sa.Column("world", sa.Text(), primary_key=True),
                       sa.Column("strategy_id", sa.Text(), primary_key=True),
                       sa.Column("symbol", sa.Text(), primary_key=True),
                       col("qty", double)]),
        ("metric_updates", [serial(), col("world", text), col("strategy_id", text),
                            col("run_id", text), col("seq", bigint), col("body", text),
                            col("sent", integer, server_default=zero),
                            sa.UniqueConstraint("world", "strategy_id", "run_id", "seq")]),
    ]


def upgrade() -> None:
    have = set(sa.inspect(op.get_bind()).get_table_names())
    for name, items in _tables():
        if name not in have:
            kw = {"sqlite_autoincrement": True} if name != "positions" else {}
            op.create_table(name, *items, **kw)


def downgrade() -> None:
    for name, _ in reversed(_tables()):
        op.drop_table(name)
