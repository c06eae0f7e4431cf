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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy import Connection, bindparam, insert, literal, select, update

from qmtl.core.contracts import ActivationEvent
from qmtl.core.db import Database, IntegrityError, MigratedStore
from qmtl.core.errors import QmtlError
from world_api.domain.evaluator import Change, WorldEngine
from world_api.domain.policy import Policy
from world_api.service import tables as t
from world_api.service.audit_log import AuditLog
from world_api.service.market_store import MarketStore
from world_api.service.operator_store import OperatorStore
from world_api.service.runner_store import RunnerStore
from world_api.service.world_admin_store import WorldAdmin


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


class TokenInfo(BaseModel):
    """A bearer token's public record: its short public ``id``, who it is for (``owner``),
    its role and times (epoch ns; ``expires``/``revoked`` None when not set). The secret is
    never part of it.

    >>> TokenInfo(id="0a1b2c3d", owner="ci", role="viewer", created=0).status(now=1)
    'active'
    >>> TokenInfo(id="0a1b2c3d", owner="ci", role="viewer", created=0, expires=5).status(9)
    'expired'
    """

    id: str
    owner: str
    role: str
    created: int
    expires: int | None = None
    revoked: int | None = None

    def status(self, now: int | None = None) -> Literal["active", "expired", "revoked"]:
        """``revoked``, ``expired`` (at ``now``, epoch ns) or ``active``."""
        if self.revoked is not None:
            return "revoked"
        if self.expires is not None and (now if now is not None else _now_ns()) >= self.expires:
            return "expired"
        return "active"


def _now_ns() -> int:
    return time.time_ns()


MIGRATIONS = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version_world"

# statements built once: SQLAlchemy then reuses their compiled form
_w, _p, _e, _k = t.worlds.c, t.policies.c, t.events.c, t.metric_keys.c
_THE_WORLD = _w.id == bindparam("world")
_WORLD = select(_w.id, _w.name, _w.capital, _w.mode).where(_THE_WORLD)
_WORLD_SEQ = select(_w.seq).where(_THE_WORLD)
_LOCK_WORLD = _WORLD_SEQ.with_for_update()  # PostgreSQL: FOR UPDATE; SQLite: BEGIN IMMEDIATE
_SET_SEQ = update(t.worlds).where(_THE_WORLD).values(seq=bindparam("seq"))
_SET_POLICY_VERSION = (update(t.worlds).where(_THE_WORLD)
                       .values(policy_version=bindparam("version")))
_POLICY = (select(_p.version, _p.body).where(_p.world == bindparam("world"))
           .order_by(_p.version.desc()))
_ADD_POLICY = insert(t.policies)
_ADD_KEYS = insert(t.metric_keys)
_ADD_EVENTS = insert(t.events)
_SEEN = select(literal(1)).where(
    _k.world == bindparam("world"), _k.strategy_id == bindparam("sid"),
    _k.run_id == bindparam("run"), _k.seq == bindparam("s"),
)
_EVENTS_AFTER = (
    select(_e.seq, _e.ts, _e.strategy_id, _e.active, _e.weight, _e.reason, _e.policy_version,
           _e.stage)
    .where(_e.world == bindparam("world"), _e.seq > bindparam("after"))
    .order_by(_e.seq)
    .limit(bindparam("limit"))
)
_FLAG_PLAN = (update(t.plans)
              .where(t.plans.c.id == bindparam("plan"),
                     t.plans.c.world == bindparam("plan_world"), t.plans.c.applied == 0)
              .values(applied=1))
_TOKEN = select(t.tokens.c.id, t.tokens.c.owner, t.tokens.c.role, t.tokens.c.created,
                t.tokens.c.expires, t.tokens.c.revoked, t.tokens.c.hash).where(
    t.tokens.c.id.in_(bindparam("ids", expanding=True)))
_STATES = select(t.strategy_state.c.strategy_id, t.strategy_state.c.state).where(
    t.strategy_state.c.world == bindparam("world"))
_REALIZED = (select(t.world_returns.c.ts, t.world_returns.c.ret, t.world_returns.c.source)
             .where(t.world_returns.c.world == bindparam("world"))
             .order_by(t.world_returns.c.ts))


class Store(WorldAdmin, AuditLog, OperatorStore, MarketStore, RunnerStore, MigratedStore):
    """The world store on the database ``url`` names (see :func:`open_store`); opening it
    brings the schema to the latest migration."""

    def __init__(self, url: str) -> None:
        db = Database(url, unavailable=StoreUnavailable, what="world store")
        super().__init__(db, MIGRATIONS, VERSION_TABLE)
        upsert = self.db.insert(t.strategy_state)
        self._put_states = upsert.on_conflict_do_update(
            index_elements=["world", "strategy_id"], set_={"state": upsert.excluded.state}
        )
        points = self.db.insert(t.world_returns)
        self._put_points = points.on_conflict_do_update(
            index_elements=["world", "ts"],
            set_={"ret": points.excluded.ret, "source": points.excluded.source},
        )

    # -- worlds and policies -----------------------------------------------------------------
    def create_world(self, info: WorldInfo, actor: str = "system", request_id: str = "") -> None:
        """Create a world with the default policy as version 1 (Conflict if it exists)."""
        try:
            with self.transaction() as conn:
                conn.execute(
                    insert(t.worlds).values(
                        id=info.id, name=info.name, capital=info.capital, mode=info.mode,
                        created=_now_ns(), seq=0, policy_version=1,
                    )
                )
                conn.execute(_ADD_POLICY, {"world": info.id, "version": 1,
                                           "body": Policy().model_dump_json(),
                                           "created": _now_ns()})
                self._audit(conn, info.id, actor, "create_world", info.model_dump(), request_id)
        except IntegrityError:
            raise Conflict(f"world {info.id!r} already exists") from None

    def list_worlds(self) -> list[WorldInfo]:
        """Every world, by id."""
        w = t.worlds.c
        with self.transaction(read_only=True) as conn:
            rows = conn.execute(select(w.id, w.name, w.capital, w.mode).order_by(w.id)).all()
        return [WorldInfo(id=r[0], name=r[1], capital=r[2], mode=r[3]) for r in rows]

    def get_world(self, world: str) -> WorldInfo:
        """One world (NotFound if unknown)."""
        with self.transaction(read_only=True) as conn:
            row = conn.execute(_WORLD, {"world": world}).first()
        if row is None:
            raise NotFound(f"unknown world {world!r}")
        return WorldInfo(id=row[0], name=row[1], capital=row[2], mode=row[3])

    def world_seq(self, world: str) -> int:
        """The seq of the world's latest event (0 before any)."""
        with self.transaction(read_only=True) as conn:
            seq = conn.execute(_WORLD_SEQ, {"world": world}).scalar()
        if seq is None:
            raise NotFound(f"unknown world {world!r}")
        return int(seq)

    def get_policy(self, world: str, version: int | None = None) -> tuple[int, Policy]:
        """``(version, policy)``: the latest, or the given version."""
        self.get_world(world)
        query = _POLICY if version is None else _POLICY.where(_p.version == version)
        with self.transaction(read_only=True) as conn:
            row = conn.execute(query.limit(1), {"world": world}).first()
        if row is None:
            raise NotFound(f"world {world!r} has no policy version {version}")
        return int(row[0]), Policy.model_validate_json(row[1])

    # -- engine state ------------------------------------------------------------------------
    def load_engine(self, world: str) -> WorldEngine:
        """The world's engine, rebuilt from its latest policy, stored strategy states and
        realized world return."""
        version, policy = self.get_policy(world)
        return WorldEngine.from_state(self.engine_state(world, policy, version))

    def engine_state(self, world: str, policy: Policy, version: int) -> dict[str, Any]:
        """What :meth:`WorldEngine.from_state` takes: ``policy`` at ``version`` with the
        world's stored strategy states and realized return points."""
        with self.transaction(read_only=True) as conn:
            rows = conn.execute(_STATES, {"world": world}).all()
            points = conn.execute(_REALIZED, {"world": world}).all()
            overs = conn.execute(select(t.overrides.c.body)  # operator overrides that hold
                                 .where(t.overrides.c.world == world)).scalars().all()
        return {
            "overrides": [json.loads(b) for b in overs],
            "policy": policy.model_dump(mode="json"),
            "policy_version": version,
            "strategies": {sid: json.loads(body) for sid, body in rows},
            "realized": [(int(ts), float(r)) for ts, r, _ in points],
            # the book's points replace the records' (world_returns.ReturnSeries.book)
            "realized_source": "book" if any(p[2] == "book" for p in points) else "records",
        }

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
        plan: str | None = None,
        extra: Callable[[Connection, int], int] | None = None,
    ) -> list[ActivationEvent]:
        """Write one change of a world in one transaction; return its events (with seqs).

        ``keys`` are metric idempotency keys ``(strategy_id, run_id, seq)``: a key already
        stored raises Conflict and nothing is written. ``policy`` stores a new version.
        ``plan`` is the id of the plan this change applies: it is flagged applied in the same
        transaction, under the world's lock, and a plan applied already (or unknown) raises
        Conflict with nothing written, so concurrent applies of one plan succeed once.
        ``extra(conn, seq)`` writes more in the same transaction and returns the new seq.
        """
        now = _now_ns()
        try:
            with self.transaction() as conn:
                seq = conn.execute(_LOCK_WORLD, {"world": world}).scalar()  # the world's lock
                if seq is None:
                    raise NotFound(f"unknown world {world!r}")
                seq = int(seq)
                if plan is not None:
                    flagged = conn.execute(_FLAG_PLAN, {"plan_world": world, "plan": plan})
                    if flagged.rowcount != 1:
                        raise Conflict(f"plan {plan!r} was already applied")
                if keys:
                    conn.execute(_ADD_KEYS, [
                        {"world": world, "strategy_id": sid, "run_id": run, "seq": s}
                        for sid, run, s in keys
                    ])
                if policy is not None:
                    conn.execute(_ADD_POLICY, {"world": world, "version": engine.policy_version,
                                               "body": policy.model_dump_json(), "created": now})
                    conn.execute(_SET_POLICY_VERSION,
                                 {"world": world, "version": engine.policy_version})
                events = []
                for ch in changes:
                    seq += 1
                    events.append(ActivationEvent(
                        world=world,
                        seq=seq,
                        ts=now,
                        strategy_id=ch.strategy_id,
                        active=ch.active,
                        weight=min(max(ch.weight, 0.0), 1.0),
                        reason=ch.reason,
                        policy_version=engine.policy_version,
                        stage=ch.stage,
                    ))
                if events:
                    conn.execute(_ADD_EVENTS, [
                        {"world": world, "seq": ev.seq, "ts": ev.ts,
                         "strategy_id": ev.strategy_id, "active": int(ev.active),
                         "weight": ev.weight, "reason": ev.reason,
                         "policy_version": ev.policy_version, "stage": ev.stage}
                        for ev in events
                    ])
                if extra is not None:
                    seq = extra(conn, seq)
                conn.execute(_SET_SEQ, {"world": world, "seq": seq})
                states = [
                    {"world": world, "strategy_id": sid,
                     "state": json.dumps(engine.strategies[sid].to_dict())}
                    for sid in sorted(engine.dirty)
                ]
                if states:
                    conn.execute(self._put_states, states)
                if engine.realized.reset:  # the book's first points: the records' go
                    conn.execute(t.world_returns.delete()
                                 .where(t.world_returns.c.world == world))
                points, source = engine.realized.dirty_points(), engine.realized.source
                if points:
                    conn.execute(self._put_points, [
                        {"world": world, "ts": ts, "ret": r, "source": source}
                        for ts, r in points])
                if action:
                    self._audit(conn, world, actor, action, detail or {}, request_id)
        except IntegrityError:
            raise Conflict("already recorded") from None
        engine.dirty.clear()
        engine.realized.dirty.clear()
        engine.realized.reset = False
        return events

    def seen_keys(
        self, world: str, keys: Sequence[tuple[str, str, int]]
    ) -> set[tuple[str, str, int]]:
        """Which of ``keys`` (strategy_id, run_id, seq) are already recorded."""
        seen = set()
        with self.transaction(read_only=True) as conn:
            for sid, run, s in keys:
                found = conn.execute(_SEEN, {"world": world, "sid": sid, "run": run, "s": s})
                if found.first() is not None:
                    seen.add((sid, run, s))
        return seen

    def events_after(self, world: str, after: int, limit: int = 1000) -> list[ActivationEvent]:
        """Events with seq > ``after``, in order."""
        with self.transaction(read_only=True) as conn:
            rows = conn.execute(_EVENTS_AFTER, {"world": world, "after": after,
                                                "limit": limit}).all()
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
                stage=r[7],
            )
            for r in rows
        ]

    # -- tokens, audit, plans ----------------------------------------------------------------
    def add_token(self, info: TokenInfo, token_hash: str) -> None:
        """Store a token's public record and the hash of its secret (Conflict when its id is
        taken)."""
        try:
            with self.transaction() as conn:
                conn.execute(insert(t.tokens).values(hash=token_hash, **info.model_dump()))
                self._audit(conn, None, info.id, "token_create",
                            info.model_dump(exclude={"id"}), "")
        except IntegrityError:
            raise Conflict(f"token id {info.id!r} is taken") from None

    def token(self, token_id: str) -> tuple[TokenInfo, str] | None:
        """``(record, stored hash)`` of the token with ``token_id``, or None."""
        found = self.tokens_with_ids([token_id])
        return found[0] if found else None

    def tokens_with_ids(self, ids: Sequence[str]) -> list[tuple[TokenInfo, str]]:
        """``(record, stored hash)`` of each token whose id is one of ``ids``."""
        with self.transaction(read_only=True) as conn:
            rows = conn.execute(_TOKEN, {"ids": list(ids)}).all()
        return [(TokenInfo(id=r[0], owner=r[1], role=r[2], created=r[3], expires=r[4],
                           revoked=r[5]), r[6]) for r in rows]

    def list_tokens(self) -> list[TokenInfo]:
        """Every token's public record (never its hash), oldest first."""
        k = t.tokens.c
        with self.transaction(read_only=True) as conn:
            rows = conn.execute(select(k.id, k.owner, k.role, k.created, k.expires, k.revoked)
                                .order_by(k.created, k.id)).all()
        return [TokenInfo(id=r[0], owner=r[1], role=r[2], created=r[3], expires=r[4],
                          revoked=r[5]) for r in rows]

    def revoke_token(self, token_id: str, actor: str = "cli") -> TokenInfo:
        """Revoke a token now (NotFound when unknown; a revoked one keeps its first
        revocation time) and audit it; returns its record."""
        k = t.tokens.c
        with self.transaction() as conn:
            done = conn.execute(update(t.tokens).where(k.id == token_id, k.revoked.is_(None))
                                .values(revoked=_now_ns()))
            if done.rowcount == 1:
                self._audit(conn, None, token_id, "token_revoke", {"by": actor}, "")
        found = self.token(token_id)
        if found is None:
            raise NotFound(f"unknown token id {token_id!r}")
        return found[0]

    def rehash_token(self, token_id: str, old_hash: str, new_hash: str) -> None:
        """Replace a token's stored hash, if it is still ``old_hash`` (an old store's unsalted
        hash is replaced on the token's first use)."""
        k = t.tokens.c
        with self.transaction() as conn:
            conn.execute(update(t.tokens).where(k.id == token_id, k.hash == old_hash)
                         .values(hash=new_hash))

    def save_plan(self, plan_id: str, world: str, base_seq: int, body: dict[str, Any]) -> None:
        """Store an allocation plan."""
        with self.transaction() as conn:
            conn.execute(
                insert(t.plans).values(
                    id=plan_id, world=world, base_seq=base_seq, body=json.dumps(body),
                    created=_now_ns(),
                )
            )

    def get_plan(self, world: str, plan_id: str) -> tuple[int, dict[str, Any], bool]:
        """``(base_seq, body, applied)`` of a plan (NotFound if unknown)."""
        p = t.plans.c
        with self.transaction(read_only=True) as conn:
            row = conn.execute(
                select(p.base_seq, p.body, p.applied).where(p.id == plan_id, p.world == world)
            ).first()
        if row is None:
            raise NotFound(f"unknown plan {plan_id!r} for world {world!r}")
        return int(row[0]), json.loads(row[1]), bool(row[2])


def default_store_url() -> str:
    """``~/.qmtl/world.db``.

    >>> default_store_url().endswith("world.db")
    True
    """
    return str(Path.home() / ".qmtl" / "world.db")


def open_store(url: str | None = None) -> Store:
    """A store by URL: ``postgresql://...`` (``?schema=name`` for a schema of its own),
    ``sqlite:///path`` or a plain file path (default ``~/.qmtl/world.db``)."""
    return Store(url or default_store_url())
