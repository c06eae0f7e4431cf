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
from collections.abc import Callable
from typing import Any

from qmtl.core.contracts import ActivationEvent
from world_api.domain.evaluator import Change, WorldEngine
from world_api.service.store import Store

EngineChange = Callable[[WorldEngine], tuple[list[Change], dict[str, Any]]]
"""A write: given the world's engine, the changes it made and the store's commit arguments."""


class WorldService:
    """State shared by the endpoints (see the module docstring)."""

    def __init__(self, store: Store, insecure_dev: bool = False, relay: Any = None) -> None:
        self.store = store
        self.insecure_dev = insecure_dev
        self.relay = relay
        self._locks: dict[str, threading.Lock] = {}
        self._engines: dict[str, WorldEngine] = {}
        self._guard = threading.Lock()
        self.version = 0  # bumped on every write that produced events

    def lock(self, world: str) -> threading.Lock:
        """The lock that serializes ``world``'s writes (and reads that must be consistent)."""
        with self._guard:
            return self._locks.setdefault(world, threading.Lock())

    def engine(self, world: str) -> WorldEngine:
        """``world``'s engine, loaded from the store when not in memory (hold its lock)."""
        eng = self._engines.get(world)
        if eng is None:
            eng = self._engines[world] = self.store.load_engine(world)
        return eng

    def forget(self, world: str) -> None:
        """Drop ``world``'s in-memory engine (it is rebuilt from the store on next use)."""
        self._engines.pop(world, None)

    def write(self, world: str, fn: EngineChange) -> list[ActivationEvent]:
        """Run ``fn(engine)`` under the world's lock and commit what it returns; on any
        failure drop the in-memory engine so nothing half-applied survives."""
        self.store.get_world(world)
        with self.lock(world):
            if self.relay is not None:
                self.relay.start_world(world, self.store.world_seq(world))
            engine = self.engine(world)
            try:
                changes, commit_args = fn(engine)
                events = self.store.commit(world, engine, changes, **commit_args)
            except BaseException:
                self.forget(world)
                raise
        if events:
            self.version += 1
        if self.relay is not None:
            self.relay.publish(world)  # stored first, then published (outbox)
        return events
