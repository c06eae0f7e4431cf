"""``/worlds/{world}/market``: declare a world's market (operator, YAML or JSON body, audited,
versioned like the policy), read it (viewer).

>>> sorted(r.path for r in router.routes)
['/worlds/{world}/market', '/worlds/{world}/market']
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from qmtl.core.contracts import INT64_MAX, WorldId
from world_api.domain.market import Market, MarketError, parse_market
from world_api.service.deps import OperatorDep, ServiceDep, ViewerDep
from world_api.service.errors import HTTPError
from world_api.service.openapi import error_responses, request_body
from world_api.service.store import NotFound

router = APIRouter(prefix="/worlds/{world}/market", tags=["market"])


def _answer(world: str, version: int, market: Market) -> dict[str, Any]:
    return {
        "world": world,
        "version": version,
        "market": market.model_dump(mode="json"),
        "summary": market.summary(),
    }


@router.put(
    "",
    responses=error_responses(),
    openapi_extra=request_body(
        Market,
        text=("application/yaml",),
        description="The market, as JSON or YAML (see docs/world.md).",
    ),
)
async def put_market(
    world: WorldId, request: Request, svc: ServiceDep, who: OperatorDep
) -> dict[str, Any]:
    """Parse the body as a market and make it the world's next market version (audited);
    422 naming the field when it is invalid."""
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        market = parse_market(body)
    except MarketError as exc:
        raise HTTPError(422, str(exc)) from None

    def put() -> int:
        with svc.lock(world):
            version = svc.store.put_market(world, market, who.name, who.request_id)
            svc.set_market(world, market)
            return version

    version = await asyncio.to_thread(put)
    return _answer(world, version, market)


@router.get("", responses=error_responses())
def get_market(
    world: WorldId,
    svc: ServiceDep,
    _: ViewerDep,
    version: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
) -> dict[str, Any]:
    """The world's market (or ``?version=``); 404 when it has none."""
    svc.store.get_world(world)
    found = svc.store.get_market(world, version)
    if found is None:
        what = f"market version {version}" if version is not None else "market"
        raise NotFound(f"world {world!r} has no {what}: PUT /worlds/{world}/market declares one")
    return _answer(world, *found)
