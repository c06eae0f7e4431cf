"""The world store's first schema: the tables the store made before it had migrations
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

TEXT, BIGINT, INT, DOUBLE = sa.Text, sa.BigInteger, sa.Integer, sa.DOUBLE_PRECISION


def _tables() -> list[tuple[str, list[sa.Column], dict]]:
    def col(name: str, type_: type, **kw: object) -> sa.Column:
        kw.setdefault("nullable", False)
        return sa.Column(name, type_(), **kw)

    def key(name: str, type_: type) -> sa.Column:
        return sa.Column(name, type_(), primary_key=True, autoincrement=False)

    zero = sa.text("0")
    return [
        ("schema_version", [col("version", INT)], {}),
        ("worlds", [key("id", TEXT), col("name", TEXT), col("capital", DOUBLE),
                    col("mode", TEXT), col("created", BIGINT),
                    col("seq", BIGINT, server_default=zero),
                    col("policy_version", INT, server_default=zero)], {}),
        ("policies", [key("world", TEXT), key("version", INT), col("body", TEXT),
                      col("created", BIGINT)], {}),
        ("strategy_state", [key("world", TEXT), key("strategy_id", TEXT),
                            col("state", TEXT)], {}),
        ("events", [key("world", TEXT), key("seq", BIGINT), col("ts", BIGINT),
                    col("strategy_id", TEXT), col("active", INT), col("weight", DOUBLE),
                    col("reason", TEXT), col("policy_version", INT)], {}),
        ("metric_keys", [key("world", TEXT), key("strategy_id", TEXT), key("run_id", TEXT),
                         key("seq", BIGINT)], {}),
        ("tokens", [key("hash", TEXT), col("role", TEXT), col("name", TEXT),
                    col("created", BIGINT)], {}),
        ("audit", [sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                             primary_key=True),
                   col("world", TEXT, nullable=True), col("ts", BIGINT), col("actor", TEXT),
                   col("action", TEXT), col("detail", TEXT), col("request_id", TEXT)],
         {"sqlite_autoincrement": True}),
        ("plans", [key("id", TEXT), col("world", TEXT), col("base_seq", BIGINT),
                   col("body", TEXT), col("created", BIGINT),
                   col("applied", INT, server_default=zero)], {}),
    ]


def upgrade() -> None:
    have = set(sa.inspect(op.get_bind()).get_table_names())
    for name, columns, kw in _tables():
        if name not in have:
            op.create_table(name, *columns, **kw)


def downgrade() -> None:
    for name, _, _ in reversed(_tables()):
        op.drop_table(name)
