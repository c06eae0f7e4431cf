"""``POST /worlds/{world}/strategies/{strategy_id}/approve``: an operator approves a
strategy's waiting promotion from paper to live (policy ``promotion.live.approval:
operator``; see ``world_api.domain.stages``). The move is an event, and audited.

>>> [r.path for r in router.routes]
['/worlds/{world}/strategies/{strategy_id}/approve']
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from qmtl.core.contracts import WorldId
from world_api.domain.evaluator import Change, WorldEngine
from world_api.domain.stages import NotAwaitingApproval, approve_in
from world_api.service.deps import OperatorDep, ServiceDep
from world_api.service.errors import HTTPError
from world_api.service.openapi import error_responses
from world_api.service.responses import Events
from world_api.service.store import NotFound

router = APIRouter(prefix="/worlds/{world}/strategies/{strategy_id}", tags=["stages"])


class Approved(Events):
    """The approval's answer: the strategy, the stage it is in now and the event.

    >>> Approved(world="w", strategy_id="s", stage="live").events
    []
    """

    strategy_id: str
    stage: str


@router.post("/approve", response_model=Approved, responses=error_responses(
    409, s409="The strategy is not waiting for approval (the detail says why), or the "
              "world's stored state cannot be loaded."))
def approve(world: WorldId, strategy_id: str, svc: ServiceDep, who: OperatorDep) -> Any:
    """Move ``strategy_id`` from paper to live; 404 when it never reported, 409 when it
    does not wait for approval (not in paper, its paper record does not pass the live
    rules yet, or the world does not manage stages)."""

    def change(engine: WorldEngine) -> tuple[list[Change], dict[str, Any]]:
        try:
            changes = [Change(**m) for m in approve_in(engine, strategy_id, who.name)]
        except KeyError:
            raise NotFound(
                f"strategy {strategy_id!r} has not reported to world {world!r}") from None
        except NotAwaitingApproval as exc:
            raise HTTPError(409, f"cannot approve {strategy_id!r} in world {world!r}: "
                                 f"{exc}") from None
        return changes, {
            "actor": who.name,
            "action": "approve",
            "detail": {"strategy_id": strategy_id, "stage": "live"},
            "request_id": who.request_id,
        }

    events = svc.write(world, change)
    return {"world": world, "strategy_id": strategy_id, "stage": "live",
            "events": [e.model_dump() for e in events]}
