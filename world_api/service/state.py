"""What the WorldService's endpoints share: the store, a lock and an in-memory engine per
world, and the Kafka relay.

A world's writes are serialized by its lock; its engine is rebuilt from the store on first
use and after any failed write (one process per store).

>>> import tempfile, os
>>> from world_api.service.store import WorldInfo, open_store
>>> svc = WorldService(open_store(os.path.join(tempfile.mkdtemp(), "w.db")))
>>> svc.store.create_world(WorldInfo(id="w"))
>>> svc.engine("w").policy_version
1
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select

from qmtl.core.contracts import ActivationEvent
from world_api.domain.evaluator import Change, WorldEngine
from world_api.domain.market import Market
from world_api.domain.policy import Policy
from world_api.service import tables as t
from world_api.service.auth import TokenCache
from world_api.service.broadcast import Broadcaster, world_event
from world_api.service.errors import HTTPError
from world_api.service.event_feed import Tails
from world_api.service.group_commit import GroupCommit
from world_api.service.ingest_limits import IngestLimits
from world_api.service.observability import ServiceMetrics
from world_api.service.ownership import OwnerBook
from world_api.service.store import NotFound, Store

EngineChange = Callable[[WorldEngine], tuple[list[Change], dict[str, Any]] | None]
"""A write: given the world's engine, the changes it made and the store's commit arguments
(None: nothing to write, the engine is unchanged)."""


class UnreadableState(HTTPError):
    """A world's stored policy or state does not validate any more (409): the message says
    what is wrong; ``PUT /worlds/{world}/policy`` with a valid policy repairs it.

    >>> UnreadableState("w", "hysteresis.margin: Input should be a finite number").status
    409
    """

    def __init__(self, world: str, reason: str) -> None:
        super().__init__(
            409,
            f"world {world!r}'s stored policy or state cannot be loaded ({reason}); "
            "PUT a valid policy to repair it",
        )


def _reason(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)


def read_policy(store: Store, world: str, version: int | None = None) -> tuple[int, Policy]:
    """``store.get_policy`` that reports a stored policy that no longer validates as
    :class:`UnreadableState` (409) instead of failing with a 500.

    >>> import tempfile, os
    >>> from world_api.service.store import WorldInfo, open_store
    >>> store = open_store(os.path.join(tempfile.mkdtemp(), "w.db"))
    >>> store.create_world(WorldInfo(id="w"))
    >>> read_policy(store, "w")[0]
    1
    """
    try:
        return store.get_policy(world, version)
    except (ValidationError, ValueError) as exc:
        raise UnreadableState(world, _reason(exc)) from None


class WorldService:
    """State shared by the endpoints (see the module docstring)."""

    def __init__(self, store: Store, insecure_dev: bool = False, relay: Any = None,
                 token_ttl: float = 2.0) -> None:
        self.store = store
        self.tokens = TokenCache(ttl=token_ttl)  # tokens that authenticated lately (auth.py)
        self.insecure_dev = insecure_dev
        self.relay = relay
        self._locks: dict[str, threading.Lock] = {}
        self._engines: dict[str, WorldEngine] = {}
        self._exists: set[str] = set()  # worlds found in the store (world_exists)
        self._guard = threading.Lock()
        self.version = 0  # bumped on every write that produced events
        self.broadcast = Broadcaster()  # live updates for the dashboard (not stored)
        self.tails = Tails(store)  # each watched world's newest events, for its streams
        self.metrics = ServiceMetrics()  # Prometheus counters (observability.py)
        # metrics updates that arrive together are written together (group_commit.py,
        # ingest.py); create_app sets it
        self.ingests: GroupCommit[Any] | None = None
        self.ingest_limits = IngestLimits.from_env()  # what one request may cause
        self.owners = OwnerBook(store)  # who owns each strategy (ownership.py)
        # the world's clock (epoch ns): every engine reads it (overrides' expiry, the time a
        # record was last heard from) and the ticker ticks with it (ticker.py)
        self.clock: Callable[[], int] = time.time_ns
        self._markets: dict[str, Market | None] = {}  # each world's market (None: none)

    def lock(self, world: str) -> threading.Lock:
        """The lock that serializes ``world``'s writes (and reads that must be consistent)."""
        with self._guard:
            return self._locks.setdefault(world, threading.Lock())

    def engine(self, world: str) -> WorldEngine:
        """``world``'s engine, loaded from the store when not in memory (hold its lock)."""
        eng = self._engines.get(world)
        if eng is None:
            try:
                eng = self.store.load_engine(world)
            except (ValidationError, ValueError) as exc:
                raise UnreadableState(world, _reason(exc)) from None
            eng.clock = self.clock
            self._engines[world] = eng
        return eng

    def repaired_engine(self, world: str, policy: Policy) -> WorldEngine:
        """An engine for ``world`` from its stored strategy states under ``policy`` and its
        latest policy version, for a world whose stored policy cannot be loaded (hold its
        lock). The engine is not kept: it is committed by a write, then reloaded."""
        with self.store.transaction() as conn:
            version = conn.execute(
                select(t.policies.c.version).where(t.policies.c.world == world)
                .order_by(t.policies.c.version.desc()).limit(1)
            ).scalar()
        eng = WorldEngine.from_state(self.store.engine_state(world, policy, int(version or 0)))
        eng.clock = self.clock
        return eng

    def market(self, world: str) -> Market | None:
        """``world``'s latest market (None: it has none), read from the store once."""
        if world not in self._markets:
            found = self.store.get_market(world)
            self._markets[world] = None if found is None else found[1]
        return self._markets[world]

    def set_market(self, world: str, market: Market) -> None:
        """Note ``world``'s new market (stored already)."""
        self._markets[world] = market

    def forget(self, world: str) -> None:
        """Drop ``world``'s in-memory engine (it is rebuilt from the store on next use)."""
        self._engines.pop(world, None)
        self._markets.pop(world, None)
        self.owners.forget(world)
        self._exists.discard(world)

    def world_exists(self, world: str) -> bool:
        """True when ``world`` is in memory or in the store (a store read the first time:
        call it off the event loop); only worlds found are remembered."""
        if world in self._engines or world in self._exists:
            return True
        try:
            self.store.get_world(world)
        except NotFound:
            return False
        self._exists.add(world)
        return True

    def write(
        self,
        world: str,
        fn: EngineChange,
        repair: Policy | None = None,
        live: list[tuple[str, dict[str, Any]]] | None = None,
    ) -> list[ActivationEvent]:
        """Run ``fn(engine)`` under the world's lock and commit what it returns; on any
        failure drop the in-memory engine so nothing half-applied survives. With ``repair``,
        a world whose stored policy cannot be loaded gets an engine under that policy.

        Once committed, the dashboard's stream (:attr:`broadcast`) gets the items ``fn`` put
        in ``live``, then a ``world`` event if the world's return may have moved (only while
        someone subscribes)."""
        if world not in self._engines:  # a world in memory exists (deleting it forgets it)
            self.store.get_world(world)
        with self.lock(world):
            if self.relay is not None:
                self.relay.start_world(world, self.store.world_seq(world))
            try:
                engine = self.engine(world)
            except UnreadableState:
                if repair is None:
                    raise
                engine = self._engines[world] = self.repaired_engine(world, repair)
            watched = self.broadcast.subscribers(world) > 0
            stamp = engine.world_stamp() if watched else None
            try:
                done = fn(engine)
                events = []
                if done is not None:  # None: nothing to write
                    with self.metrics.store_write():
                        events = self.store.commit(world, engine, done[0], **done[1])
            except BaseException:
                self.forget(world)
                raise
            moved = watched and engine.world_stamp() != stamp
            published = [*(live or []), *([("world", world_event(engine))] if moved else [])]
        if events:
            self.version += 1
        if done is not None:  # stored (activation events, or others a commit's extra wrote)
            self.tails.poke(world)  # the world's streams may read them now
        sent = 0
        if self.relay is not None:
            sent = self.relay.publish(world)  # stored first, then published (outbox)
        for name, data in published:  # committed: now the dashboard may see it
            self.broadcast.publish(world, name, data)
        self.metrics.written(world, events, sent, len(published))
        return events
