"""The world store: one interface, two backends (SQLite file, PostgreSQL), by URL.

Every write is one transaction. Ingesting metrics records the idempotency keys, the changed
strategy states, the new activation events (with the world's next seqs) and an audit row
together, so events are written before anyone can see them (outbox) and a failure leaves
nothing half-written.

>>> import tempfile, os
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "w.db"))
>>> store.create_world(WorldInfo(id="w1", name="demo", capital=1e6, mode="paper"))
>>> [w.id for w in store.list_worlds()]
['w1']
>>> store.get_world("nope")
Traceback (most recent call last):
...
world_api.service.store.NotFound: unknown world 'nope'
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from qmtl.core.contracts import ActivationEvent
from qmtl.core.db import PostgresBackend, SqlBackend, SqliteBackend, parse_db_url
from qmtl.core.errors import QmtlError
from world_api.domain.evaluator import Change, WorldEngine
from world_api.domain.policy import Policy

SCHEMA_VERSION = 1


class StoreError(QmtlError):
    """Base class of store errors."""


class NotFound(StoreError, LookupError):
    """An unknown world, policy version, plan or strategy."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class Conflict(StoreError):
    """The write conflicts with what is stored (exists already, changed since)."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or failed; nothing was written."""


class WorldInfo(BaseModel):
    """A world's identity and capital."""

    id: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    name: str = Field("", max_length=200)
    capital: float = Field(1_000_000.0, gt=0)
    mode: Literal["backtest", "paper", "live"] = "paper"


def _now_ns() -> int:
    return time.time_ns()


_DDL: list[str] = [
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS worlds (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, capital DOUBLE PRECISION NOT NULL,
        mode TEXT NOT NULL, created BIGINT NOT NULL, seq BIGINT NOT NULL DEFAULT 0,
        policy_version INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS policies (
        world TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
        created BIGINT NOT NULL, PRIMARY KEY (world, version))""",
    """CREATE TABLE IF NOT EXISTS strategy_state (
        world TEXT NOT NULL, strategy_id TEXT NOT NULL, state TEXT NOT NULL,
        PRIMARY KEY (world, strategy_id))""",
    """CREATE TABLE IF NOT EXISTS events (
        world TEXT NOT NULL, seq BIGINT NOT NULL, ts BIGINT NOT NULL,
        strategy_id TEXT NOT NULL, active INTEGER NOT NULL, weight DOUBLE PRECISION NOT NULL,
        reason TEXT NOT NULL, policy_version INTEGER NOT NULL, PRIMARY KEY (world, seq))""",
    """CREATE TABLE IF NOT EXISTS metric_keys (
        world TEXT NOT NULL, strategy_id TEXT NOT NULL, run_id TEXT NOT NULL,
        seq BIGINT NOT NULL, PRIMARY KEY (world, strategy_id, run_id, seq))""",
    """CREATE TABLE IF NOT EXISTS tokens (
        hash TEXT PRIMARY KEY, role TEXT NOT NULL, name TEXT NOT NULL,
        created BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audit (
        id {serial}, world TEXT, ts BIGINT NOT NULL, actor TEXT NOT NULL,
        action TEXT NOT NULL, detail TEXT NOT NULL, request_id TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS plans (
        id TEXT PRIMARY KEY, world TEXT NOT NULL, base_seq BIGINT NOT NULL,
        body TEXT NOT NULL, created BIGINT NOT NULL, applied INTEGER NOT NULL DEFAULT 0)""",
]


class Store(SqlBackend):
    """Backend-independent logic over a DB-API connection (see the module docstring)."""

    ddl = _DDL
    unavailable = StoreUnavailable
    lock_world_sql = "SELECT seq FROM worlds WHERE id = ?"  # SQLite: BEGIN IMMEDIATE locks

    def create_tables(self) -> None:
        """Create the tables (idempotent) and record the schema version."""
        super().create_tables()
        with self.transaction() as cur:
            if self.execute(cur, "SELECT version FROM schema_version").fetchone() is None:
                self.execute(
                    cur, "INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION]
                )

    # -- worlds and policies -----------------------------------------------------------------
    def create_world(self, info: WorldInfo, actor: str = "system", request_id: str = "") -> None:
        """Create a world with the default policy as version 1 (Conflict if it exists)."""
        try:
            with self.transaction() as cur:
                self.execute(
                    cur,
                    "INSERT INTO worlds (id, name, capital, mode, created, seq, policy_version) "
                    "VALUES (?, ?, ?, ?, ?, 0, 1)",
                    [info.id, info.name, info.capital, info.mode, _now_ns()],
                )
                self.execute(
                    cur,
                    "INSERT INTO policies (world, version, body, created) VALUES (?, 1, ?, ?)",
                    [info.id, Policy().model_dump_json(), _now_ns()],
                )
                self._audit(cur, info.id, actor, "create_world", info.model_dump(), request_id)
        except self.integrity_errors():
            raise Conflict(f"world {info.id!r} already exists") from None

    def list_worlds(self) -> list[WorldInfo]:
        """Every world, by id."""
        with self.transaction() as cur:
            rows = self.execute(cur, "SELECT id, name, capital, mode FROM worlds ORDER BY id")
            return [WorldInfo(id=r[0], name=r[1], capital=r[2], mode=r[3]) for r in rows]

    def get_world(self, world: str) -> WorldInfo:
        """One world (NotFound if unknown)."""
        with self.transaction() as cur:
            row = self.execute(
                cur, "SELECT id, name, capital, mode FROM worlds WHERE id = ?", [world]
            ).fetchone()
        if row is None:
            raise NotFound(f"unknown world {world!r}")
        return WorldInfo(id=row[0], name=row[1], capital=row[2], mode=row[3])

    def world_seq(self, world: str) -> int:
        """The seq of the world's latest event (0 before any)."""
        with self.transaction() as cur:
            row = self.execute(cur, "SELECT seq FROM worlds WHERE id = ?", [world]).fetchone()
        if row is None:
            raise NotFound(f"unknown world {world!r}")
        return int(row[0])

    def get_policy(self, world: str, version: int | None = None) -> tuple[int, Policy]:
        """``(version, policy)``: the latest, or the given version."""
        self.get_world(world)
        with self.transaction() as cur:
            if version is None:
                row = self.execute(
                    cur,
                    "SELECT version, body FROM policies WHERE world = ? "
                    "ORDER BY version DESC LIMIT 1",
                    [world],
                ).fetchone()
            else:
                row = self.execute(
                    cur,
                    "SELECT version, body FROM policies WHERE world = ? AND version = ?",
                    [world, version],
                ).fetchone()
        if row is None:
            raise NotFound(f"world {world!r} has no policy version {version}")
        return int(row[0]), Policy.model_validate_json(row[1])

    # -- engine state ------------------------------------------------------------------------
    def load_engine(self, world: str) -> WorldEngine:
        """The world's engine, rebuilt from its latest policy and stored strategy states."""
        version, policy = self.get_policy(world)
        with self.transaction() as cur:
            rows = self.execute(
                cur, "SELECT strategy_id, state FROM strategy_state WHERE world = ?", [world]
            ).fetchall()
        state = {
            "policy": policy.model_dump(mode="json"),
            "policy_version": version,
            "strategies": {sid: json.loads(body) for sid, body in rows},
        }
        return WorldEngine.from_state(state)

    def commit(
        self,
        world: str,
        engine: WorldEngine,
        changes: list[Change],
        *,
        keys: Sequence[tuple[str, str, int]] = (),
        policy: Policy | None = None,
        actor: str = "system",
        action: str = "",
        detail: dict[str, Any] | None = None,
        request_id: str = "",
    ) -> list[ActivationEvent]:
        """Write one change of a world in one transaction; return its events (with seqs).

        ``keys`` are metric idempotency keys ``(strategy_id, run_id, seq)``: a key already
        stored raises Conflict and nothing is written. ``policy`` stores a new version.
        """
        now = _now_ns()
        try:
            with self.transaction() as cur:
                row = self.execute(cur, self.lock_world_sql, [world]).fetchone()
                if row is None:
                    raise NotFound(f"unknown world {world!r}")
                seq = int(row[0])
                for sid, run, s in keys:
                    self.execute(
                        cur,
                        "INSERT INTO metric_keys (world, strategy_id, run_id, seq) "
                        "VALUES (?, ?, ?, ?)",
                        [world, sid, run, s],
                    )
                if policy is not None:
                    self.execute(
                        cur,
                        "INSERT INTO policies (world, version, body, created) VALUES (?, ?, ?, ?)",
                        [world, engine.policy_version, policy.model_dump_json(), now],
                    )
                    self.execute(
                        cur,
                        "UPDATE worlds SET policy_version = ? WHERE id = ?",
                        [engine.policy_version, world],
                    )
                events = []
                for ch in changes:
                    seq += 1
                    ev = ActivationEvent(
                        world=world,
                        seq=seq,
                        ts=now,
                        strategy_id=ch.strategy_id,
                        active=ch.active,
                        weight=min(max(ch.weight, 0.0), 1.0),
                        reason=ch.reason,
                        policy_version=engine.policy_version,
                    )
                    self.execute(
                        cur,
                        "INSERT INTO events (world, seq, ts, strategy_id, active, weight, reason, "
                        "policy_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [
                            world,
                            ev.seq,
                            ev.ts,
                            ev.strategy_id,
                            int(ev.active),
                            ev.weight,
                            ev.reason,
                            ev.policy_version,
                        ],
                    )
                    events.append(ev)
                self.execute(cur, "UPDATE worlds SET seq = ? WHERE id = ?", [seq, world])
                for sid in sorted(engine.dirty):
                    body = json.dumps(engine.strategies[sid].to_dict())
                    self._upsert_state(cur, world, sid, body)
                if action:
                    self._audit(cur, world, actor, action, detail or {}, request_id)
        except self.integrity_errors():
            raise Conflict("already recorded") from None
        engine.dirty.clear()
        return events

    def _upsert_state(self, cur: Any, world: str, sid: str, body: str) -> None:
        self.execute(
            cur,
            "INSERT INTO strategy_state (world, strategy_id, state) VALUES (?, ?, ?) "
            "ON CONFLICT (world, strategy_id) DO UPDATE SET state = excluded.state",
            [world, sid, body],
        )

    def seen_keys(
        self, world: str, keys: Sequence[tuple[str, str, int]]
    ) -> set[tuple[str, str, int]]:
        """Which of ``keys`` (strategy_id, run_id, seq) are already recorded."""
        seen = set()
        with self.transaction() as cur:
            for sid, run, s in keys:
                row = self.execute(
                    cur,
                    "SELECT 1 FROM metric_keys WHERE world = ? AND strategy_id = ? AND run_id = ? "
                    "AND seq = ?",
                    [world, sid, run, s],
                ).fetchone()
                if row is not None:
                    seen.add((sid, run, s))
        return seen

    def events_after(self, world: str, after: int, limit: int = 1000) -> list[ActivationEvent]:
        """Events with seq > ``after``, in order."""
        with self.transaction() as cur:
            rows = self.execute(
                cur,
                "SELECT seq, ts, strategy_id, active, weight, reason, policy_version FROM events "
                "WHERE world = ? AND seq > ? ORDER BY seq LIMIT ?",
                [world, after, limit],
            ).fetchall()
        return [
            ActivationEvent(
                world=world,
                seq=r[0],
                ts=r[1],
                strategy_id=r[2],
                active=bool(r[3]),
                weight=r[4],
                reason=r[5],
                policy_version=r[6],
            )
            for r in rows
        ]

    # -- tokens, audit, plans ----------------------------------------------------------------
    def add_token(self, token_hash: str, role: str, name: str) -> None:
        """Store a token's hash and role."""
        with self.transaction() as cur:
            self.execute(
                cur,
                "INSERT INTO tokens (hash, role, name, created) VALUES (?, ?, ?, ?)",
                [token_hash, role, name, _now_ns()],
            )

    def token(self, token_hash: str) -> tuple[str, str] | None:
        """``(role, name)`` of a token hash, or None."""
        with self.transaction() as cur:
            row = self.execute(
                cur, "SELECT role, name FROM tokens WHERE hash = ?", [token_hash]
            ).fetchone()
        return (row[0], row[1]) if row else None

    def _audit(
        self,
        cur: Any,
        world: str | None,
        actor: str,
        action: str,
        detail: dict[str, Any],
        request_id: str,
    ) -> None:
        self.execute(
            cur,
            "INSERT INTO audit (world, ts, actor, action, detail, request_id) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [world, _now_ns(), actor, action, json.dumps(detail, default=str), request_id],
        )

    def audit(
        self,
        world: str | None,
        actor: str,
        action: str,
        detail: dict[str, Any],
        request_id: str = "",
    ) -> None:
        """Record one audit row on its own."""
        with self.transaction() as cur:
            self._audit(cur, world, actor, action, detail, request_id)

    def audit_log(self, world: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The world's audit rows, oldest first."""
        with self.transaction() as cur:
            rows = self.execute(
                cur,
                "SELECT ts, actor, action, detail, request_id FROM audit WHERE world = ? "
                "ORDER BY id LIMIT ?",
                [world, limit],
            ).fetchall()
        return [
            {
                "ts": r[0],
                "actor": r[1],
                "action": r[2],
                "detail": json.loads(r[3]),
                "request_id": r[4],
            }
            for r in rows
        ]

    def save_plan(self, plan_id: str, world: str, base_seq: int, body: dict[str, Any]) -> None:
        """Store an allocation plan."""
        with self.transaction() as cur:
            self.execute(
                cur,
                "INSERT INTO plans (id, world, base_seq, body, created) VALUES (?, ?, ?, ?, ?)",
                [plan_id, world, base_seq, json.dumps(body), _now_ns()],
            )

    def get_plan(self, world: str, plan_id: str) -> tuple[int, dict[str, Any], bool]:
        """``(base_seq, body, applied)`` of a plan (NotFound if unknown)."""
        with self.transaction() as cur:
            row = self.execute(
                cur,
                "SELECT base_seq, body, applied FROM plans WHERE id = ? AND world = ?",
                [plan_id, world],
            ).fetchone()
        if row is None:
            raise NotFound(f"unknown plan {plan_id!r} for world {world!r}")
        return int(row[0]), json.loads(row[1]), bool(row[2])

    def mark_plan_applied(self, cur: Any, plan_id: str) -> None:
        """Flag a plan as applied (inside the apply transaction)."""
        self.execute(cur, "UPDATE plans SET applied = 1 WHERE id = ?", [plan_id])


class SqliteStore(SqliteBackend, Store):
    """SQLite file backend (WAL; one connection per thread)."""


class PostgresStore(PostgresBackend, Store):
    """PostgreSQL backend (psycopg 3, one connection per thread).

    ``schema`` (optional) puts the tables in their own schema, e.g. one per test run.
    """

    lock_world_sql = "SELECT seq FROM worlds WHERE id = ? FOR UPDATE"


def default_store_url() -> str:
    """``~/.qmtl/world.db``.

    >>> default_store_url().endswith("world.db")
    True
    """
    return str(Path.home() / ".qmtl" / "world.db")


def open_store(url: str | None = None) -> Store:
    """A store by URL: ``postgresql://...`` (``?schema=name`` for a schema of its own),
    ``sqlite:///path`` or a plain file path (default ``~/.qmtl/world.db``)."""
    kind, target, schema = parse_db_url(url or default_store_url())
    if kind == "postgresql":
        return PostgresStore(target, schema=schema)
    return SqliteStore(target)
