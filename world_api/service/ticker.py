"""The world's clock in the service: every ``interval`` seconds each world whose policy has a
``max_silence`` is ticked with the time now (:meth:`WorldEngine.tick`), and the changes its
silent strategies cause are stored and published as events like any other.

The engine stays pure: the time comes from here (``clock``, epoch ns; tests give a fixed
one: ``WorldService.clock``). ``qmtl world serve --tick`` sets the interval (``QMTL_WORLD_TICK``).

>>> import tempfile, os
>>> from world_api.service.state import WorldService
>>> from world_api.service.store import WorldInfo, open_store
>>> svc = WorldService(open_store(os.path.join(tempfile.mkdtemp(), "w.db")))
>>> svc.store.create_world(WorldInfo(id="w"))
>>> tick_worlds(svc, now=0)
[]
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from qmtl.core.contracts import ActivationEvent
from world_api.domain.evaluator import Change, WorldEngine
from world_api.service.state import UnreadableState, WorldService
from world_api.service.store import NotFound, StoreError

log = logging.getLogger("qmtl.world")

DEFAULT_TICK = 5.0
"""Seconds between two ticks of the world's clock (``qmtl world serve --tick``)."""


def tick_world(svc: WorldService, world: str, now: int) -> list[ActivationEvent]:
    """Tick ``world``'s engine at ``now`` and store what it changed; its new events."""

    def change(engine: WorldEngine) -> tuple[list[Change], dict[str, Any]] | None:
        if engine.policy.max_silence is None and not any(
            s.silent for s in engine.strategies.values()
        ):
            return None
        changes = engine.tick(now)
        if not changes and not engine.dirty:
            return None
        return changes, {}

    return svc.write(world, change)


def tick_worlds(svc: WorldService, now: int | None = None) -> list[ActivationEvent]:
    """Tick every world of the store (a world that cannot be loaded is skipped and logged);
    the events all of them made."""
    at = svc.clock() if now is None else now
    events: list[ActivationEvent] = []
    for info in svc.store.list_worlds():
        try:
            events += tick_world(svc, info.id, at)
        except NotFound:
            continue  # deleted meanwhile
        except (UnreadableState, StoreError) as exc:
            log.warning("world %s not ticked: %s", info.id, exc)
    return events


async def run_ticker(svc: WorldService, interval: float) -> None:
    """Tick every world each ``interval`` seconds on the service's clock until cancelled (in
    a worker thread: a tick writes to the store)."""
    while True:
        await asyncio.sleep(interval)
        try:
            await asyncio.to_thread(tick_worlds, svc)
        except Exception:
            log.exception("the world's clock failed to tick")
