"""``/worlds/{world}/strategies/{strategy_id}/override`` (PUT sets, DELETE clears) and
``/worlds/{world}/overrides`` (GET lists): an operator forces a strategy active or inactive
or pins its weight, with a reason and an optional expiry (see
:mod:`world_api.domain.overrides`). It holds across metric updates; setting or clearing it
re-runs the selection at once (in allocation mode ``manual`` it changes today's allocation
directly), and the activation events it causes carry ``override: <reason>``.

>>> sorted({r.path for r in router.routes})
['/worlds/{world}/overrides', '/worlds/{world}/strategies/{strategy_id}/override']
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from qmtl.core.contracts import ActivationEvent, WorldId, no_control_chars
from world_api.domain.apply import held_now, switch
from world_api.domain.evaluator import Change, WorldEngine
from world_api.domain.overrides import Override, holding
from world_api.service.deps import OperatorDep, ServiceDep, ViewerDep
from world_api.service.errors import HTTPError
from world_api.service.openapi import error_responses
from world_api.service.store import NotFound

router = APIRouter(prefix="/worlds/{world}", tags=["overrides"])


class OverrideRequest(BaseModel):
    """``PUT .../override``: force ``state``, optionally pin ``weight`` (state active), say
    why; ``expires_in`` seconds from now (none: until cleared).

    >>> OverrideRequest(state="inactive", reason="broker outage").weight is None
    True
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    state: Literal["active", "inactive"]
    weight: float | None = Field(None, gt=0.0, le=1.0)
    # no control characters: PostgreSQL cannot store a NUL (a 500 there, stored by SQLite)
    reason: Annotated[str, Field(min_length=1, max_length=500), AfterValidator(no_control_chars)]
    expires_in: float | None = Field(None, gt=0.0, le=10 * 365 * 86400.0)


class OverrideSet(BaseModel):
    """An override set or cleared, and the activation events it caused.

    >>> OverrideSet(world="w", override=None).events
    []
    """

    world: str
    override: Override | None
    events: list[ActivationEvent] = Field(default_factory=list)


class OverrideList(BaseModel):
    """``GET /worlds/{world}/overrides``: the stored overrides (``holds`` false once
    expired).

    >>> OverrideList(world="w", overrides=[]).overrides
    []
    """

    world: str
    overrides: list[dict[str, Any]]


def _write(svc: ServiceDep, world: str, sid: str, ov: Override | None, who: Any,
           action: str) -> list[ActivationEvent]:
    def change(engine: WorldEngine) -> tuple[list[Change], dict[str, Any]]:
        if ov is None:
            if engine.overrides.pop(sid, None) is None:
                raise NotFound(f"strategy {sid!r} has no override in world {world!r}")
        else:
            engine.overrides[sid] = ov
            pins = [o.weight or 0.0 for o in holding(engine.overrides, ov.at).values()]
            if sum(pins) > 1.0 + 1e-9:
                raise HTTPError(422, f"pinned weights would sum to {sum(pins):.6f} > 1")
        label = ov.label if ov is not None else "override cleared"
        if engine.policy.allocation.mode == "manual":
            engine.reselect()  # refreshes the waiting proposal (changes nothing)
            changes = switch(engine, held_now(engine), label)
        else:
            changes = engine.reselect()
        detail = {"strategy_id": sid,
                  "override": ov.model_dump() if ov is not None else None}
        return changes, {"actor": who.id, "action": action, "detail": detail,
                         "request_id": who.request_id,
                         "extra": svc.store.override_writer(world, sid, ov)}

    return svc.write(world, change)


@router.put("/strategies/{strategy_id}/override", response_model=OverrideSet,
            responses=error_responses(409))
def put_override(world: WorldId, strategy_id: str, req: OverrideRequest, svc: ServiceDep,
                 who: OperatorDep) -> dict[str, Any]:
    """Set (or replace) the strategy's override; audited with the caller's token id."""
    if req.weight is not None and req.state != "active":
        raise HTTPError(422, "a pinned weight needs state 'active'")
    now = time.time_ns()
    expires = None if req.expires_in is None else now + int(req.expires_in * 1e9)
    ov = Override(strategy_id=strategy_id, state=req.state, weight=req.weight,
                  reason=req.reason, expires=expires, who=who.id, at=now)
    events = _write(svc, world, strategy_id, ov, who, "override")
    return {"world": world, "override": ov, "events": events}


@router.delete("/strategies/{strategy_id}/override", response_model=OverrideSet,
               responses=error_responses(409))
def clear_override(world: WorldId, strategy_id: str, svc: ServiceDep,
                   who: OperatorDep) -> dict[str, Any]:
    """Clear the strategy's override (404 when it has none); the world decides again."""
    events = _write(svc, world, strategy_id, None, who, "override_clear")
    return {"world": world, "override": None, "events": events}


@router.get("/overrides", response_model=OverrideList, responses=error_responses(409))
def list_overrides(world: WorldId, svc: ServiceDep, _: ViewerDep) -> dict[str, Any]:
    """The world's stored overrides, each with ``holds`` (false once expired)."""
    svc.store.get_world(world)
    now = time.time_ns()
    return {"world": world, "overrides": [
        {**o.model_dump(), "holds": o.live(now)} for o in svc.store.overrides(world)]}
