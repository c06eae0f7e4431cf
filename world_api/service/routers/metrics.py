"""``POST /worlds/{world}/metrics``: one MetricsUpdate or a list; duplicates (same strategy,
run and seq) are counted and skipped, a stale seq is a 409.

>>> [r.path for r in router.routes]
['/worlds/{world}/metrics']
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from pydantic import TypeAdapter, ValidationError

from qmtl.core.contracts import MetricsUpdate, WorldId
from world_api.domain.evaluator import Change, StaleUpdate, WorldEngine
from world_api.service.broadcast import metrics_event
from world_api.service.deps import Actor, DeveloperDep, ServiceDep
from world_api.service.errors import HTTPError, describe
from world_api.service.openapi import error_responses, request_body
from world_api.service.responses import Ingested
from world_api.service.state import WorldService

router = APIRouter(prefix="/worlds/{world}/metrics", tags=["metrics"])
_ONE = TypeAdapter(MetricsUpdate)
_MANY = TypeAdapter(list[MetricsUpdate])


@router.post("", response_model=Ingested, responses=error_responses(409),
             openapi_extra=request_body(
    MetricsUpdate | list[MetricsUpdate], description="One MetricsUpdate, or a list of them."))
async def post_metrics(
    world: WorldId, request: Request, svc: ServiceDep, who: DeveloperDep
) -> Any:
    """Ingest the updates; return how many were accepted and the events they caused."""
    raw = await request.body()
    adapter: TypeAdapter[Any] = _MANY if raw.lstrip().startswith(b"[") else _ONE
    try:
        parsed = adapter.validate_json(raw)
    except ValidationError as exc:
        svc.metrics.rejected(world, "invalid")
        raise HTTPError(422, describe(exc.errors())) from None
    updates = parsed if isinstance(parsed, list) else [parsed]
    for u in updates:
        if u.world != world:
            svc.metrics.rejected(world, "wrong_world", len(updates))
            raise HTTPError(422, f"update for world {u.world!r} posted to world {world!r}")
    return await asyncio.to_thread(ingest, svc, world, updates, who)


def ingest(
    svc: WorldService, world: str, updates: list[MetricsUpdate], who: Actor
) -> dict[str, Any]:
    """Apply the updates not seen before in one write (blocking; runs in a worker thread)."""
    keys = [(u.strategy_id, u.run_id, u.seq) for u in updates]
    duplicates = 0
    live: list[tuple[str, dict[str, Any]]] = []  # what the updates stream publishes

    def change(engine: WorldEngine) -> tuple[list[Change], dict[str, Any]]:
        nonlocal duplicates
        seen = svc.store.seen_keys(world, keys)
        fresh, fresh_keys, changes = [], [], []
        for u, k in zip(updates, keys, strict=True):
            if k in seen or k in fresh_keys:
                duplicates += 1
                continue
            fresh.append(u)
            fresh_keys.append(k)
        watched = svc.broadcast.subscribers(world) > 0
        for u in fresh:
            try:
                changes += engine.ingest(u)
            except StaleUpdate as exc:
                svc.metrics.rejected(world, "stale", len(updates))
                raise HTTPError(409, str(exc)) from None
            if watched:
                live.append(("metrics", metrics_event(engine, u)))
        detail = {
            "updates": len(fresh),
            "duplicates": duplicates,
            "strategies": sorted({u.strategy_id for u in fresh}),
        }
        return changes, {
            "keys": fresh_keys,
            "actor": who.name,
            "action": "post_metrics",
            "detail": detail,
            "request_id": who.request_id,
        }

    events = svc.write(world, change, live=live)
    svc.metrics.ingested(world, len(updates) - duplicates, duplicates)
    return {
        "accepted": len(updates) - duplicates,
        "duplicates": duplicates,
        "events": [e.model_dump() for e in events],
    }
