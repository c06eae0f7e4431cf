"""``GET /worlds/{world}/activation``: the activation table with the seq it is at (a
subscriber loads it, then follows the event stream after that seq).

>>> [r.path for r in router.routes]
['/worlds/{world}/activation']
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from qmtl.core.contracts import WorldId
from world_api.service.deps import ServiceDep, ViewerDep
from world_api.service.openapi import error_responses
from world_api.service.responses import ActivationTable

router = APIRouter(prefix="/worlds/{world}/activation", tags=["activation"])


@router.get("", response_model=ActivationTable, responses=error_responses(409))
def activation(world: WorldId, svc: ServiceDep, _: ViewerDep) -> dict[str, Any]:
    """``{world, seq, policy_version, strategies: [{strategy_id, active, weight, status,
    rank, stage}]}``."""
    svc.store.get_world(world)
    with svc.lock(world):  # the seq and the table are read together
        engine = svc.engine(world)
        seq = svc.store.world_seq(world)
        rows = [
            {
                "strategy_id": v.strategy_id,
                "active": v.active,
                "weight": v.weight,
                "status": v.status,
                "rank": v.rank,
                "override": v.override.label if v.override is not None else None,
                "stage": v.stage,  # None when the world does not manage stages
            }
            for v in engine.views()
        ]
        return {
            "world": world,
            "seq": seq,
            "policy_version": engine.policy_version,
            "strategies": rows,
            "frozen": _frozen(svc, world),
            "stages": engine.policy.promotion is not None,
        }


def _frozen(svc: ServiceDep, world: str) -> str | None:
    """Why the world holds orders now (an apply between freeze and unfreeze), or None."""
    found = svc.store.frozen(world)
    return None if found is None else f"plan {found[1]!r} is being applied ({found[2]})"
