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
from world_api.domain.evaluator import Change, WorldEngine
from world_api.service.deps import OperatorDep, ServiceDep, ViewerDep
from world_api.service.errors import HTTPError
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
        proposed = engine.proposed_weights()
        base_seq = svc.store.world_seq(world)
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
    409, s409="The plan was applied already, or the world changed since it was made."))
def apply(world: WorldId, req: ApplyRequest, svc: ServiceDep, who: OperatorDep) -> dict[str, Any]:
    """Apply a plan's proposed weights (with ``overrides``); 409 when it was applied
    already or the world changed since, 422 for a weight out of bounds."""
    base_seq, body, applied = svc.store.get_plan(world, req.plan_id)
    if applied:  # a quick answer; the commit checks again atomically
        raise HTTPError(409, f"plan {req.plan_id!r} was already applied")

    def change(engine: WorldEngine) -> tuple[list[Change], dict[str, Any]]:
        seq = svc.store.world_seq(world)
        if seq != base_seq:
            raise HTTPError(
                409,
                f"world {world!r} changed since the plan (seq {base_seq} -> {seq}): "
                "make a new plan",
            )
        weights = {**body["proposed"], **req.overrides}
        max_w = engine.policy.allocation.max_weight
        for sid, w in weights.items():
            if not (0.0 <= w <= max_w):
                raise HTTPError(422, f"weight of {sid!r} must be in [0, {max_w}], got {w}")
        if sum(weights.values()) > 1.0 + 1e-9:
            raise HTTPError(422, f"weights sum to {sum(weights.values()):.6f} > 1")
        try:
            changes = engine.apply_weights(weights, "allocation apply")
        except ValueError as exc:
            raise HTTPError(422, str(exc)) from None
        detail = {"plan_id": req.plan_id, "weights": weights, "overrides": req.overrides}
        return changes, {
            "actor": who.name,
            "action": "apply",
            "detail": detail,
            "request_id": who.request_id,
            "plan": req.plan_id,  # flagged applied in the commit's transaction, or 409
        }

    events = svc.write(world, change)
    return {"world": world, "plan_id": req.plan_id, "events": [e.model_dump() for e in events]}
