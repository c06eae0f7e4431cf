"""``/worlds/{world}/strategies``: the world's view of each strategy that reported.

>>> sorted(r.path for r in router.routes)
['/worlds/{world}/strategies', '/worlds/{world}/strategies/{strategy_id}']
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from qmtl.core.contracts import WorldId
from world_api.domain.evaluator import StrategyView
from world_api.service.deps import ServiceDep, ViewerDep
from world_api.service.openapi import error_responses
from world_api.service.store import NotFound
from world_api.service.world_admin import MAX_LIMIT, Sort, Status, select_views

router = APIRouter(prefix="/worlds/{world}/strategies", tags=["strategies"])


NEXT = {"X-Next-Cursor": {"description": "The cursor of the next page, when this one stops "
                                          "short of the end.", "schema": {"type": "string"}}}


@router.get("", responses={200: {"description": "The strategies' views.", "headers": NEXT},
                           **error_responses(409)})
def strategies(
    world: WorldId,
    svc: ServiceDep,
    _: ViewerDep,
    response: Response,
    active: bool | None = None,
    status: Status | None = None,
    q: Annotated[str | None, Query(max_length=200, description="Substring of the id.")] = None,
    sort: Sort = "rank",
    limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT)] = None,
    cursor: Annotated[str | None, Query(max_length=2000)] = None,
) -> list[StrategyView]:
    """The strategies' views, filtered and sorted (ranked first by default); a page that
    stops short of the end sets ``X-Next-Cursor`` (see ``world_api/service/world_admin.py``)."""
    svc.store.get_world(world)
    with svc.lock(world):
        views = svc.engine(world).views()
    page, nxt = select_views(views, active=active, status=status, q=q, sort=sort,
                             limit=limit, cursor=cursor)
    if nxt is not None:
        response.headers["X-Next-Cursor"] = nxt
    return page


@router.get("/{strategy_id}", responses=error_responses(409))
def strategy(world: WorldId, strategy_id: str, svc: ServiceDep, _: ViewerDep) -> StrategyView:
    """One strategy's view (status, weight, rank, metrics, hints); 404 if it never
    reported."""
    svc.store.get_world(world)
    with svc.lock(world):
        try:
            return svc.engine(world).view(strategy_id)
        except KeyError:
            raise NotFound(
                f"strategy {strategy_id!r} has not reported to world {world!r}"
            ) from None
