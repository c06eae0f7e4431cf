"""``/worlds/{world}/allocations``: the published weights, a plan of what the allocation
would give now, and applying a plan (with optional overrides) if the world did not change
since.

>>> sorted(r.path.rsplit("/", 1)[-1] for r in router.routes)
['allocations', 'apply', 'plan']
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from qmtl.core.contracts import WorldId
from world_api.domain.apply import proposal
from world_api.service.applying import run_apply
from world_api.service.deps import OperatorDep, ServiceDep, ViewerDep
from world_api.service.openapi import error_responses
from world_api.service.responses import Applied, Plan, Weights

router = APIRouter(prefix="/worlds/{world}/allocations", tags=["allocations"])


class ApplyRequest(BaseModel):
    """Apply a plan, optionally overriding some strategies' weights.

    >>> ApplyRequest(plan_id="p").overrides
    {}
    """

    plan_id: str
    overrides: dict[str, float] = Field(default_factory=dict)
    drain: float = Field(1.0, ge=0.0, le=60.0, description="Seconds to wait for orders in "
                         "flight between freeze and switch.")


@router.get("", response_model=Weights, responses=error_responses(409))
def allocations(world: WorldId, svc: ServiceDep, _: ViewerDep) -> dict[str, Any]:
    """The active strategies' published weights with the seq they are at."""
    svc.store.get_world(world)
    with svc.lock(world):
        return {
            "world": world,
            "seq": svc.store.world_seq(world),
            "weights": svc.engine(world).weights(),
        }


@router.post("/plan", response_model=Plan, responses=error_responses(409))
def plan(world: WorldId, svc: ServiceDep, who: OperatorDep) -> dict[str, Any]:
    """Save and return a plan: current and proposed weights and what would change."""
    svc.store.get_world(world)
    with svc.lock(world):
        engine = svc.engine(world)
        current = engine.weights()
        proposed = proposal(engine)
        base_seq = svc.store.last_change_seq(world)
    changes = {
        sid: {"from": current.get(sid, 0.0), "to": w}
        for sid, w in proposed.items()
        if abs(current.get(sid, 0.0) - w) > 1e-12
    }
    plan_id = uuid.uuid4().hex
    body = {"current": current, "proposed": proposed, "changes": changes}
    svc.store.save_plan(plan_id, world, base_seq, body)
    svc.store.audit(world, who.name, "plan", {"plan_id": plan_id}, who.request_id)
    return {"world": world, "plan_id": plan_id, "base_seq": base_seq, **body}


@router.post("/apply", response_model=Applied, responses=error_responses(
    409, s409="The plan was applied already, the world changed since it was made, or "
    "another apply is running."))
def apply(world: WorldId, req: ApplyRequest, svc: ServiceDep, who: OperatorDep) -> dict[str, Any]:
    """Apply a plan's proposed weights (with ``overrides``) in two phases: freeze, drain,
    switch, unfreeze, each a control event (see ``docs/world.md``); 409 when it was applied
    already, the world changed since or another apply runs, 422 for a weight out of
    bounds."""
    return run_apply(svc, world, req.plan_id, req.overrides, who, req.drain)
