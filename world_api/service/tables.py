"""The world store's tables (SQLAlchemy Core), as the latest migration leaves them.

The schema itself is made by the Alembic scripts in ``migrations/``; a test checks that they
agree with these definitions.

>>> {'artifacts', 'audit', 'events', 'markets', 'metric_keys'} <= set(metadata.tables)
True
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
    text,
)

from qmtl.core.db import serial_id

metadata = MetaData()

worlds = Table(
    "worlds",
    metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("capital", DOUBLE_PRECISION, nullable=False),
    Column("mode", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False, server_default=text("0")),
    Column("policy_version", Integer, nullable=False, server_default=text("0")),
)

policies = Table(
    "policies",
    metadata,
    Column("world", Text, primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("body", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
)

strategy_state = Table(
    "strategy_state",
    metadata,
    Column("world", Text, primary_key=True),
    Column("strategy_id", Text, primary_key=True),
    Column("state", Text, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("world", Text, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, nullable=False),
    Column("strategy_id", Text, nullable=False),
    Column("active", Integer, nullable=False),
    Column("weight", DOUBLE_PRECISION, nullable=False),
    Column("reason", Text, nullable=False),
    Column("policy_version", Integer, nullable=False),
    Column("stage", Text),  # set on a stage move (migration 0006)
)

metric_keys = Table(
    "metric_keys",
    metadata,
    Column("world", Text, primary_key=True),
    Column("strategy_id", Text, primary_key=True),
    Column("run_id", Text, primary_key=True),
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
)

tokens = Table(
    "tokens",
    metadata,
    Column("id", Text, primary_key=True),  # public, short; part of the token itself
    Column("owner", Text, nullable=False),
    Column("role", Text, nullable=False),
    Column("hash", Text, nullable=False),  # "<scheme>$<salt>$<digest>" (see auth.py)
    Column("created", BigInteger, nullable=False),
    Column("expires", BigInteger),
    Column("revoked", BigInteger),
)

audit = Table(
    "audit",
    metadata,
    serial_id(),
    Column("world", Text),
    Column("ts", BigInteger, nullable=False),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("request_id", Text, nullable=False),
    sqlite_autoincrement=True,
)

plans = Table(
    "plans",
    metadata,
    Column("id", Text, primary_key=True),
    Column("world", Text, nullable=False),
    Column("base_seq", BigInteger, nullable=False),
    Column("body", Text, nullable=False),
    Column("created", BigInteger, nullable=False),
    Column("applied", Integer, nullable=False, server_default=text("0")),
)

world_returns = Table(
    "world_returns",
    metadata,
    Column("world", Text, primary_key=True),
    Column("ts", BigInteger, primary_key=True, autoincrement=False),
    Column("ret", DOUBLE_PRECISION, nullable=False),
    Column("source", Text, nullable=False, server_default=text("'records'")),
)
"""The world's realized return, one row per point (see ``world_api.domain.world_returns``);
``source`` ``records`` or ``book`` (the book's marked-to-market return)."""

overrides = Table(
    "overrides",
    metadata,
    Column("world", Text, primary_key=True),
    Column("strategy_id", Text, primary_key=True),
    Column("body", Text, nullable=False),  # the Override as JSON (world_api.domain.overrides)
)
"""Operator overrides that hold (one per strategy; DELETE removes the row)."""

applies = Table(
    "applies",
    metadata,
    Column("id", Text, primary_key=True),
    Column("world", Text, nullable=False),
    Column("plan_id", Text, nullable=False),
    Column("step", Text, nullable=False),  # the last step stored (world_api.domain.apply)
    Column("target", Text, nullable=False),  # the weights the switch sets, JSON
    Column("outcome", Text),  # "applied" or "rolled back" once unfrozen
    Column("created", BigInteger, nullable=False),
    Column("updated", BigInteger, nullable=False),
)
"""Two-phase applies of allocation plans, step by step (recovered on startup)."""

strategy_owners = Table(
    "strategy_owners",
    metadata,
    Column("world", Text, primary_key=True),
    Column("strategy_id", Text, primary_key=True),
    Column("owner", Text),  # the token owner that first submitted it; NULL: operator-owned
    Column("since", BigInteger, nullable=False),
)
"""Who owns each strategy of a world (migration 0007; see ``world_api.service.ownership``)."""

world_submitters = Table(
    "world_submitters",
    metadata,
    Column("world", Text, primary_key=True),
    Column("owners", Text, nullable=False),  # JSON list of the owners who may submit
)
"""A world's restriction of who may submit (no row: any developer)."""

markets = Table(
    "markets",
    metadata,
    Column("world", Text, primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("body", Text, nullable=False),  # the Market as JSON (world_api.domain.market)
    Column("created", BigInteger, nullable=False),
)
"""A world's market, one row per version (migration 0009_records_market)."""

artifacts = Table(
    "artifacts",
    metadata,
    Column("world", Text, primary_key=True),
    Column("strategy_id", Text, primary_key=True),
    Column("artifact_id", Text, nullable=False),  # SHA-256 of its canonical JSON
    Column("graph_id", Text, nullable=False),  # the content id the world evaluated
    Column("kind", Text, nullable=False),  # "spec" or "source"
    Column("body", Text, nullable=False),  # the artifact, canonical JSON (qmtl.artifact)
    Column("size", Integer, nullable=False),
    Column("actor", Text, nullable=False),
    Column("updated", BigInteger, nullable=False),
)
"""Each strategy's artifact: what a runner runs (migration 0010_runner; see ``qmtl.artifact``)."""

runners = Table(
    "runners",
    metadata,
    Column("world", Text, primary_key=True),
    Column("runner", Text, primary_key=True),
    Column("seen", BigInteger, nullable=False),  # its last heartbeat, epoch ns
    Column("body", Text, nullable=False),  # its report: strategies, lag, last bar (JSON)
)
"""The runners of a world and their last heartbeat (see ``world_api.service.runner_store``)."""

runner_leases = Table(
    "runner_leases",
    metadata,
    Column("world", Text, primary_key=True),
    Column("strategy_id", Text, primary_key=True),
    Column("runner", Text, nullable=False),
    Column("expires", BigInteger, nullable=False),  # epoch ns; after it another may take it
)
"""Which runner runs each strategy, until when (one lease per strategy)."""
