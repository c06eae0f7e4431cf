"""``POST /worlds/{world}/metrics``: one MetricsUpdate or a list; duplicates (same strategy,
run and seq) are counted and skipped, a stale seq is a 409. Requests that arrive together
are written together (``ingest.py``).

>>> [r.path for r in router.routes]
['/worlds/{world}/metrics']
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import TypeAdapter, ValidationError

from qmtl.core.contracts import MetricsUpdate, WorldId
from world_api.service.deps import DeveloperDep, ServiceDep
from world_api.service.errors import HTTPError, describe
from world_api.service.openapi import error_responses, request_body
from world_api.service.responses import Ingested

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
    return await svc.ingests.submit(world, (updates, who))
