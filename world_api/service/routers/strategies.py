"""``/worlds/{world}/strategies``: the world's view of each strategy that reported.

>>> sorted(r.path for r in router.routes)
['/worlds/{world}/strategies', '/worlds/{world}/strategies/{strategy_id}']
"""

from __future__ import annotations

from fastapi import APIRouter

from qmtl.core.contracts import WorldId
from world_api.domain.evaluator import StrategyView
from world_api.service.deps import ServiceDep, ViewerDep
from world_api.service.openapi import error_responses
from world_api.service.store import NotFound

router = APIRouter(prefix="/worlds/{world}/strategies", tags=["strategies"])


@router.get("", responses=error_responses(409))
def strategies(world: WorldId, svc: ServiceDep, _: ViewerDep) -> list[StrategyView]:
    """Every strategy's view, ranked ones first."""
    svc.store.get_world(world)
    with svc.lock(world):
        return svc.engine(world).views()


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
