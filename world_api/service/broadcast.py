"""An in-memory, per-world fan-out of live updates for the dashboard (``GET
/worlds/{world}/updates``).

Every write publishes after it is committed (the ingest path one ``metrics`` event per
accepted update; any write a ``world`` event when the world's return may have moved: an
update, a new policy, an applied plan); each subscriber gets a bounded
asyncio queue. Publishing never blocks: it may run in a worker thread, so it hands each item
to the subscriber's event loop, and a full queue drops its oldest item (a slow subscriber
misses updates, ingest does not wait). Nothing is stored and nothing is replayed: a
subscriber sees what is published while it is subscribed.

>>> import asyncio
>>> async def demo():
...     hub = Broadcaster(maxsize=2)
...     with hub.subscribe("w") as sub:
...         for i in range(3):
...             hub.publish("w", "metrics", {"i": i})
...         await asyncio.sleep(0)
...         return [sub.queue.get_nowait()[1]["i"] for _ in range(sub.queue.qsize())]
>>> asyncio.run(demo())
[1, 2]
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any

from qmtl.core.contracts import MetricsUpdate
from world_api.domain.evaluator import WorldEngine

Item = tuple[str, dict[str, Any]]
"""One published item: ``(event name, data)``."""

QUEUE_SIZE = 256
"""Items a subscriber may fall behind by before its oldest are dropped."""


def world_event(engine: WorldEngine) -> dict[str, Any]:
    """The ``world`` event's data: the latest realized point (or None) and the metrics.

    >>> from world_api.domain.policy import Policy
    >>> world_event(WorldEngine(Policy()))["realized"] is None
    True
    """
    ts, r = engine.realized.arrays()
    last = None
    if len(ts):
        last = {"ts": int(ts[-1]), "return": float(r[-1]),
                "equity": float(engine.realized.equity()[-1])}
    return {"realized": last, "metrics": engine.world_metrics()}


def metrics_event(engine: WorldEngine, update: MetricsUpdate) -> dict[str, Any]:
    """The ``metrics`` event's data for an accepted ``update`` (the strategy's state after
    it).

    >>> from world_api.domain.policy import Policy
    >>> eng = WorldEngine(Policy())
    >>> u = MetricsUpdate(world="w", strategy_id="s", run_id="r", seq=1, mode="live",
    ...                   as_of=5, n_bars=1, metrics={"sharpe": 1.0}, returns=[(5, 0.01)])
    >>> _ = eng.ingest(u)
    >>> metrics_event(eng, u)["weight"], metrics_event(eng, u)["rank"]
    (1.0, 1)
    """
    view = engine.view(update.strategy_id)
    return {
        "strategy_id": view.strategy_id,
        "n_bars": view.n_bars,
        "as_of": update.as_of,
        "metrics": view.metrics,
        "active": view.active,
        "weight": view.weight,
        "rank": view.rank,
    }


class Subscription:
    """One subscriber's queue (on the event loop it subscribed from); a context manager that
    unsubscribes on exit.

    >>> async def demo():
    ...     hub = Broadcaster()
    ...     with hub.subscribe("w"):
    ...         inside = hub.subscribers("w")
    ...     return inside, hub.subscribers("w")
    >>> asyncio.run(demo())
    (1, 0)
    """

    def __init__(self, hub: Broadcaster, world: str, maxsize: int) -> None:
        self.hub, self.world = hub, world
        self.loop = asyncio.get_running_loop()
        self.queue: asyncio.Queue[Item] = asyncio.Queue(maxsize)
        self.dropped = 0

    def offer(self, item: Item) -> None:
        """Queue ``item``, dropping the oldest when full (runs on the subscriber's loop)."""
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(item)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.hub.unsubscribe(self)


class Broadcaster:
    """The per-world fan-out (see the module docstring)."""

    def __init__(self, maxsize: int = QUEUE_SIZE) -> None:
        self.maxsize = maxsize
        self._subs: dict[str, list[Subscription]] = {}
        self._guard = threading.Lock()

    def subscribe(self, world: str) -> Subscription:
        """A new subscription to ``world`` (call from the event loop that will read it)."""
        sub = Subscription(self, world, self.maxsize)
        with self._guard:
            self._subs.setdefault(world, []).append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop delivering to ``sub``."""
        with self._guard:
            subs = self._subs.get(sub.world, [])
            if sub in subs:
                subs.remove(sub)
            if not subs:
                self._subs.pop(sub.world, None)

    def subscribers(self, world: str) -> int:
        """How many subscribe to ``world`` now (the ingest path skips building what nobody
        reads)."""
        with self._guard:
            return len(self._subs.get(world, ()))

    def publish(self, world: str, event: str, data: dict[str, Any]) -> None:
        """Hand ``(event, data)`` to every subscriber of ``world``; never blocks (callable
        from any thread)."""
        with self._guard:
            subs = list(self._subs.get(world, ()))
        for sub in subs:
            try:
                if sub.loop.is_closed():
                    continue
                sub.loop.call_soon_threadsafe(sub.offer, (event, data))
            except RuntimeError:  # the loop closed meanwhile
                continue
