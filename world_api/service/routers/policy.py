"""``/worlds/{world}/policy``: set a new policy version (YAML or JSON body), read one.

>>> sorted(r.path for r in router.routes)
['/worlds/{world}/policy', '/worlds/{world}/policy']
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from qmtl.core.contracts import INT64_MAX, WorldId
from world_api.domain.evaluator import Change, WorldEngine
from world_api.domain.policy import Policy, parse_policy
from world_api.service.deps import OperatorDep, ServiceDep, StoreDep, ViewerDep
from world_api.service.openapi import error_responses, request_body
from world_api.service.responses import PolicySet, PolicyVersion
from world_api.service.state import read_policy

router = APIRouter(prefix="/worlds/{world}/policy", tags=["policy"])


@router.put("", response_model=PolicySet, responses=error_responses(409),
            openapi_extra=request_body(
    Policy, text=("application/yaml",),
    description="The policy, as JSON or YAML (every field optional; see docs/world.md)."))
async def put_policy(
    world: WorldId, request: Request, svc: ServiceDep, who: OperatorDep
) -> Any:
    """Parse the body as a policy and make it the world's next version; re-runs the
    selection and returns the activation events it caused."""
    body = (await request.body()).decode("utf-8", errors="replace")
    policy = parse_policy(body)

    def change(engine: WorldEngine) -> tuple[list[Change], dict[str, Any]]:
        version = engine.policy_version + 1
        changes = engine.set_policy(policy, version)
        detail = {"version": version, "policy": policy.model_dump(mode="json")}
        return changes, {
            "policy": policy,
            "actor": who.name,
            "action": "put_policy",
            "detail": detail,
            "request_id": who.request_id,
        }

    events = await asyncio.to_thread(svc.write, world, change, policy)
    version, _ = await asyncio.to_thread(read_policy, svc.store, world)
    return {"world": world, "version": version, "events": [e.model_dump() for e in events]}


@router.get("", response_model=PolicyVersion, responses=error_responses(409))
def get_policy(
    world: WorldId,
    store: StoreDep,
    _: ViewerDep,
    version: Annotated[int | None, Query(ge=1, le=INT64_MAX)] = None,
) -> dict[str, Any]:
    """The current policy, or ``?version=``."""
    v, policy = read_policy(store, world, version)
    return {"world": world, "version": v, "policy": policy.model_dump(mode="json")}
