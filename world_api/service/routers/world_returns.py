"""The world's own return and a live stream for the dashboard.

- ``GET /worlds/{world}/returns?kind=realized|pro_forma&after=&limit=``: the points
  ``{"ts", "return", "equity"}`` (equity from the series' first point);
- ``GET /worlds/{world}/metrics``: the realized and pro forma metrics (``POST`` on the same
  path is the ingest route, ``routers/metrics.py``);
- both with ``realized_source``: ``book`` once the world's book reports its marked-to-market
  return (``routers/book.py``), else ``records``;
- ``GET /worlds/{world}/strategies/{strategy_id}/returns``: a strategy's kept timed returns;
- ``GET /worlds/{world}/updates``: Server-Sent Events, ``event: metrics`` after each
  accepted update and ``event: world`` when the world return moved (a ``world`` snapshot
  first, on connecting); from memory (``broadcast.py``): not stored, not resumable.

>>> sorted(r.path for r in router.routes)  # doctest: +NORMALIZE_WHITESPACE
['/worlds/{world}/metrics', '/worlds/{world}/returns',
 '/worlds/{world}/strategies/{strategy_id}/returns', '/worlds/{world}/updates']
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent

from qmtl.core.contracts import INT64_MAX, INT64_MIN, WorldId
from world_api.domain.evaluator import WorldEngine
from world_api.domain.world_returns import with_equity
from world_api.service.broadcast import world_event
from world_api.service.deps import ServiceDep, ViewerDep
from world_api.service.event_feed import Closing
from world_api.service.event_stream import KEEP_ALIVE, SEP, keep_alive
from world_api.service.openapi import sse_responses
from world_api.service.responses import (
    StrategyReturns,
    StrategyUpdate,
    WorldMetrics,
    WorldReturns,
    WorldUpdate,
)
from world_api.service.state import WorldService
from world_api.service.store import NotFound
from world_api.service.stream_auth import watched

router = APIRouter(prefix="/worlds/{world}", tags=["world returns"])

MAX_POINTS = 100_000
"""The most points one ``returns`` answer holds (page on with ``after``)."""

Kind = Literal["realized", "pro_forma"]
After = Annotated[int | None, Query(ge=INT64_MIN, le=INT64_MAX,
                                    description="only points with ts > after")]
Limit = Annotated[int, Query(ge=1, le=MAX_POINTS, description="at most this many points")]


def _read(svc: WorldService, world: str) -> WorldEngine:
    svc.store.get_world(world)
    return svc.engine(world)


@router.get("/returns", response_model=WorldReturns, response_model_by_alias=True)
def world_returns(
    world: WorldId,
    svc: ServiceDep,
    _: ViewerDep,
    kind: Kind = "realized",
    after: After = None,
    limit: Limit = MAX_POINTS,
) -> dict[str, Any]:
    """The world's realized or pro forma return points, oldest first."""
    with svc.lock(world):
        engine = _read(svc, world)
        if kind == "realized":
            ts, r = engine.realized.arrays()
        else:
            ts, r, _m = engine.pro_forma()
        points = with_equity(ts, r, after, limit)
        source = engine.realized.source
    return {"world": world, "kind": kind, "points": points, "realized_source": source}


@router.get("/metrics", response_model=WorldMetrics)
def world_metrics(world: WorldId, svc: ServiceDep, _: ViewerDep) -> dict[str, Any]:
    """The realized and pro forma metrics of the world's return."""
    with svc.lock(world):
        engine = _read(svc, world)
        return {"world": world, "realized_source": engine.realized.source,
                **engine.world_metrics()}


@router.get("/strategies/{strategy_id}/returns", response_model=StrategyReturns,
            response_model_by_alias=True)
def strategy_returns(
    world: WorldId,
    strategy_id: str,
    svc: ServiceDep,
    _: ViewerDep,
    after: After = None,
    limit: Limit = MAX_POINTS,
) -> dict[str, Any]:
    """A strategy's kept timed returns (the last ``RING``), equity from the first kept."""
    with svc.lock(world):
        s = _read(svc, world).strategies.get(strategy_id)
        if s is None:
            raise NotFound(f"strategy {strategy_id!r} has not reported to world {world!r}")
        points = with_equity(*s.arrays(), after, limit)
    return {"strategy_id": strategy_id, "points": points}


def _snapshot(svc: WorldService, world: str) -> dict[str, Any]:
    with svc.lock(world):
        return world_event(svc.engine(world))


@router.get("/updates", response_class=EventSourceResponse, responses=sse_responses(
    "The world's live updates from memory: `event: world` (a snapshot on connecting, then "
    "each time the world return moves), `event: metrics` after each accepted update, and "
    "keep-alives (`event: keep-alive`, no data). Not stored, not resumable. Ends with "
    "`event: error` once the token is revoked or expires.",
    WorldUpdate | StrategyUpdate, ("world", "metrics", KEEP_ALIVE, "error")))
async def updates(
    request: Request,
    world: WorldId,
    svc: ServiceDep,
    who: ViewerDep,
    heartbeat: Annotated[float, Query(ge=0.1, le=300.0)] = 15.0,
) -> EventSourceResponse:
    """Stream the world's live updates (see the module docstring)."""
    await asyncio.to_thread(svc.store.get_world, world)
    close = svc.tails.open_stream(who.id)  # 429 past the token's cap

    async def stream() -> AsyncIterator[ServerSentEvent]:
        # subscribed before the snapshot is taken: whatever changes after it is streamed
        with svc.broadcast.subscribe(world) as sub:
            first = await asyncio.to_thread(_snapshot, svc, world)
            yield ServerSentEvent(data=json.dumps(first), event="world", sep=SEP)
            while True:
                name, data = await sub.queue.get()
                yield ServerSentEvent(data=json.dumps(data), event=name, sep=SEP)

    return EventSourceResponse(
        Closing(watched(request, svc, stream()), close),
        ping=heartbeat,
        ping_message_factory=keep_alive,
        sep=SEP,
        headers={"Cache-Control": "no-cache"},
    )
