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
world_api.store.NotFound: unknown world 'nope'
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from qmtl.contracts import ActivationEvent
from world_api.evaluator import Change, WorldEngine
from world_api.policy import Policy

SCHEMA_VERSION = 1


class StoreError(Exception):
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


def _ddl(serial: str) -> list[str]:
    return [
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
        f"""CREATE TABLE IF NOT EXISTS audit (
            id {serial}, world TEXT, ts BIGINT NOT NULL, actor TEXT NOT NULL,
            action TEXT NOT NULL, detail TEXT NOT NULL, request_id TEXT NOT NULL)""",
        """CREATE TABLE IF NOT EXISTS plans (
            id TEXT PRIMARY KEY, world TEXT NOT NULL, base_seq BIGINT NOT NULL,
            body TEXT NOT NULL, created BIGINT NOT NULL, applied INTEGER NOT NULL DEFAULT 0)""",
    ]


class Store:
    """Backend-independent logic over a DB-API connection (see the module docstring)."""

    serial = "INTEGER PRIMARY KEY AUTOINCREMENT"
    lock_world_sql = "SELECT seq FROM worlds WHERE id = ?"  # SQLite: BEGIN IMMEDIATE locks
    url: str

    # -- backend hooks -----------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """A cursor inside one transaction: committed on success, rolled back on error."""
        raise NotImplementedError
        yield

    def _sql(self, sql: str) -> str:
        return sql

    def _integrity_errors(self) -> tuple[type[BaseException], ...]:
        return (sqlite3.IntegrityError,)

    def close(self) -> None:
        """Release connections."""

    # -- helpers -----------------------------------------------------------------------------
    def _exec(self, cur: Any, sql: str, params: Sequence[Any] = ()) -> Any:
        cur.execute(self._sql(sql), tuple(params))
        return cur

    def init_schema(self) -> None:
        """Create the tables (idempotent) and record the schema version."""
        with self.transaction() as cur:
            for stmt in _ddl(self.serial):
                self._exec(cur, stmt)
            if self._exec(cur, "SELECT version FROM schema_version").fetchone() is None:
                self._exec(cur, "INSERT INTO schema_version (version) VALUES (?)", [SCHEMA_VERSION])

    # -- worlds and policies -----------------------------------------------------------------
    def create_world(self, info: WorldInfo, actor: str = "system", request_id: str = "") -> None:
        """Create a world with the default policy as version 1 (Conflict if it exists)."""
        try:
            with self.transaction() as cur:
                self._exec(
                    cur,
                    "INSERT INTO worlds (id, name, capital, mode, created, seq, policy_version) "
                    "VALUES (?, ?, ?, ?, ?, 0, 1)",
                    [info.id, info.name, info.capital, info.mode, _now_ns()],
                )
                self._exec(
                    cur,
                    "INSERT INTO policies (world, version, body, created) VALUES (?, 1, ?, ?)",
                    [info.id, Policy().model_dump_json(), _now_ns()],
                )
                self._audit(cur, info.id, actor, "create_world", info.model_dump(), request_id)
        except self._integrity_errors():
            raise Conflict(f"world {info.id!r} already exists") from None

    def list_worlds(self) -> list[WorldInfo]:
        """Every world, by id."""
        with self.transaction() as cur:
            rows = self._exec(cur, "SELECT id, name, capital, mode FROM worlds ORDER BY id")
            return [WorldInfo(id=r[0], name=r[1], capital=r[2], mode=r[3]) for r in rows]

    def get_world(self, world: str) -> WorldInfo:
        """One world (NotFound if unknown)."""
        with self.transaction() as cur:
            row = self._exec(
                cur, "SELECT id, name, capital, mode FROM worlds WHERE id = ?", [world]
            ).fetchone()
        if row is None:
            raise NotFound(f"unknown world {world!r}")
        return WorldInfo(id=row[0], name=row[1], capital=row[2], mode=row[3])

    def world_seq(self, world: str) -> int:
        """The seq of the world's latest event (0 before any)."""
        with self.transaction() as cur:
            row = self._exec(cur, "SELECT seq FROM worlds WHERE id = ?", [world]).fetchone()
        if row is None:
            raise NotFound(f"unknown world {world!r}")
        return int(row[0])

    def get_policy(self, world: str, version: int | None = None) -> tuple[int, Policy]:
        """``(version, policy)``: the latest, or the given version."""
        self.get_world(world)
        with self.transaction() as cur:
            if version is None:
                row = self._exec(
                    cur,
                    "SELECT version, body FROM policies WHERE world = ? "
                    "ORDER BY version DESC LIMIT 1",
                    [world],
                ).fetchone()
            else:
                row = self._exec(
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
            rows = self._exec(
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
                row = self._exec(cur, self.lock_world_sql, [world]).fetchone()
                if row is None:
                    raise NotFound(f"unknown world {world!r}")
                seq = int(row[0])
                for sid, run, s in keys:
                    self._exec(
                        cur,
                        "INSERT INTO metric_keys (world, strategy_id, run_id, seq) "
                        "VALUES (?, ?, ?, ?)",
                        [world, sid, run, s],
                    )
                if policy is not None:
                    self._exec(
                        cur,
                        "INSERT INTO policies (world, version, body, created) VALUES (?, ?, ?, ?)",
                        [world, engine.policy_version, policy.model_dump_json(), now],
                    )
                    self._exec(
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
                    self._exec(
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
                self._exec(cur, "UPDATE worlds SET seq = ? WHERE id = ?", [seq, world])
                for sid in sorted(engine.dirty):
                    body = json.dumps(engine.strategies[sid].to_dict())
                    self._upsert_state(cur, world, sid, body)
                if action:
                    self._audit(cur, world, actor, action, detail or {}, request_id)
        except self._integrity_errors():
            raise Conflict("already recorded") from None
        engine.dirty.clear()
        return events

    def _upsert_state(self, cur: Any, world: str, sid: str, body: str) -> None:
        self._exec(
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
                row = self._exec(
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
            rows = self._exec(
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
            self._exec(
                cur,
                "INSERT INTO tokens (hash, role, name, created) VALUES (?, ?, ?, ?)",
                [token_hash, role, name, _now_ns()],
            )

    def token(self, token_hash: str) -> tuple[str, str] | None:
        """``(role, name)`` of a token hash, or None."""
        with self.transaction() as cur:
            row = self._exec(
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
        self._exec(
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
            rows = self._exec(
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
            self._exec(
                cur,
                "INSERT INTO plans (id, world, base_seq, body, created) VALUES (?, ?, ?, ?, ?)",
                [plan_id, world, base_seq, json.dumps(body), _now_ns()],
            )

    def get_plan(self, world: str, plan_id: str) -> tuple[int, dict[str, Any], bool]:
        """``(base_seq, body, applied)`` of a plan (NotFound if unknown)."""
        with self.transaction() as cur:
            row = self._exec(
                cur,
                "SELECT base_seq, body, applied FROM plans WHERE id = ? AND world = ?",
                [plan_id, world],
            ).fetchone()
        if row is None:
            raise NotFound(f"unknown plan {plan_id!r} for world {world!r}")
        return int(row[0]), json.loads(row[1]), bool(row[2])

    def mark_plan_applied(self, cur: Any, plan_id: str) -> None:
        """Flag a plan as applied (inside the apply transaction)."""
        self._exec(cur, "UPDATE plans SET applied = 1 WHERE id = ?", [plan_id])


class SqliteStore(Store):
    """SQLite file backend (WAL; one connection per thread)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).expanduser()
        self.url = f"sqlite:///{self.path}"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self.init_schema()

    def _connection(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            try:
                conn = sqlite3.connect(
                    self.path, timeout=30, isolation_level=None, check_same_thread=False
                )
                conn.execute("PRAGMA journal_mode=WAL")
                conn.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise StoreUnavailable(f"cannot open SQLite store {self.path}: {exc}") from None
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        conn = self._connection()
        cur = conn.cursor()
        try:
            cur.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from None
        try:
            yield cur
        except BaseException:
            conn.rollback()
            raise
        else:
            try:
                conn.commit()
            except sqlite3.Error as exc:
                conn.rollback()
                raise StoreUnavailable(f"SQLite store {self.path}: {exc}") from None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class PostgresStore(Store):
    """PostgreSQL backend (psycopg 3, a small pool of one connection per thread).

    ``schema`` (optional) puts the tables in their own schema, e.g. one per test run.
    """

    serial = "BIGSERIAL PRIMARY KEY"
    lock_world_sql = "SELECT seq FROM worlds WHERE id = ? FOR UPDATE"

    def __init__(self, url: str, schema: str | None = None) -> None:
        import psycopg

        self._psycopg = psycopg
        self.url = url
        self.schema = schema
        self._local = threading.local()
        if schema:
            with self.transaction() as cur:
                cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        self.init_schema()

    def _connection(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None or conn.closed:
            try:
                conn = self._psycopg.connect(self.url, connect_timeout=5)
            except self._psycopg.OperationalError as exc:
                raise StoreUnavailable(f"cannot reach PostgreSQL store: {exc}".strip()) from None
            if self.schema:
                conn.execute(f'SET search_path TO "{self.schema}"')
                conn.commit()
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        conn = self._connection()
        try:
            with conn.transaction(), conn.cursor() as cur:
                yield cur
        except self._psycopg.OperationalError as exc:
            self._local.conn = None
            raise StoreUnavailable(f"PostgreSQL store: {exc}".strip()) from None

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s")

    def _integrity_errors(self) -> tuple[type[BaseException], ...]:
        return (self._psycopg.errors.IntegrityError,)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def default_store_url() -> str:
    """``~/.qmtl/world.db``.

    >>> default_store_url().endswith("world.db")
    True
    """
    return str(Path.home() / ".qmtl" / "world.db")


def open_store(url: str | None = None) -> Store:
    """A store by URL: ``postgresql://...`` (``?schema=name`` for a schema of its own),
    ``sqlite:///path`` or a plain file path (default ``~/.qmtl/world.db``)."""
    url = url or default_store_url()
    if url.startswith(("postgresql://", "postgres://")):
        base, _, query = url.partition("?")
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        schema = params.pop("schema", None)
        rest = "&".join(f"{k}={v}" for k, v in params.items())
        return PostgresStore(base + (f"?{rest}" if rest else ""), schema=schema)
    if url.startswith("sqlite:///"):
        url = url[len("sqlite:///") :]
    return SqliteStore(url)
