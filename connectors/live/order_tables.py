"""The order store's tables (SQLAlchemy Core), as the latest migration leaves them.

The schema itself is made by the Alembic scripts in ``migrations/``; a test checks that they
agree with these definitions.

>>> sorted(metadata.tables)
['fills', 'metric_updates', 'orders', 'positions']
"""

from __future__ import annotations

from sqlalchemy import (
    DOUBLE_PRECISION,
    BigInteger,
    Column,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    text,
)

from qmtl.core.db import serial_id

metadata = MetaData()


orders = Table(
    "orders",
    metadata,
    serial_id(),
    Column("key", Text, nullable=False, unique=True),
    Column("world", Text, nullable=False),
    Column("strategy_id", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("target_weight", DOUBLE_PRECISION, nullable=False),
    Column("target_qty", DOUBLE_PRECISION, nullable=False),
    Column("reason", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("filled", Integer, nullable=False, server_default=text("0")),
    Column("published", Integer, nullable=False, server_default=text("0")),
    sqlite_autoincrement=True,
)

fills = Table(
    "fills",
    metadata,
    serial_id(),
    Column("order_key", Text, nullable=False, unique=True),
    Column("world", Text, nullable=False),
    Column("strategy_id", Text, nullable=False),
    Column("symbol", Text, nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("qty", DOUBLE_PRECISION, nullable=False),
    Column("price", DOUBLE_PRECISION, nullable=False),
    Column("fee", DOUBLE_PRECISION, nullable=False),
    Column("created", BigInteger, nullable=False, server_default=text("0")),
    Column("published", Integer, nullable=False, server_default=text("0")),
    sqlite_autoincrement=True,
)

positions = Table(
    "positions",
    metadata,
    Column("world", Text, primary_key=True),
    Column("strategy_id", Text, primary_key=True),
    Column("symbol", Text, primary_key=True),
    Column("qty", DOUBLE_PRECISION, nullable=False),
)

metric_updates = Table(
    "metric_updates",
    metadata,
    serial_id(),
    Column("world", Text, nullable=False),
    Column("strategy_id", Text, nullable=False),
    Column("run_id", Text, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Column("sent", Integer, nullable=False, server_default=text("0")),
    UniqueConstraint("world", "strategy_id", "run_id", "seq"),
    sqlite_autoincrement=True,
)
