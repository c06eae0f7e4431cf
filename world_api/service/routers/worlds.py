"""``/worlds``: create, list, read, update and delete worlds.

>>> sorted(r.path for r in router.routes)
['/worlds', '/worlds', '/worlds/{world}', '/worlds/{world}', '/worlds/{world}']
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from qmtl.core.contracts import WorldId, no_control_chars
from world_api.service.deps import OperatorDep, ServiceDep, StoreDep, ViewerDep
from world_api.service.errors import HTTPError
from world_api.service.openapi import error_responses
from world_api.service.responses import WorldView
from world_api.service.state import read_policy
from world_api.service.store import WorldInfo
from world_api.service.world_admin import WorldDeleted, WorldUpdate, delete, patch

router = APIRouter(prefix="/worlds", tags=["worlds"])


@router.post("", status_code=201, responses=error_responses(409, s409="The world exists."))
def create_world(info: WorldInfo, store: StoreDep, who: OperatorDep) -> WorldInfo:
    """Create a world (its policy starts as the default, version 1); 409 if it exists,
    422 if its name holds a control character (PostgreSQL cannot store a NUL)."""
    try:
        no_control_chars(info.name)
    except ValueError as exc:
        raise HTTPError(422, f"name: {exc}") from None
    store.create_world(info, actor=who.name, request_id=who.request_id)
    return info


@router.get("")
def list_worlds(store: StoreDep, _: ViewerDep) -> list[WorldInfo]:
    """Every world, by id."""
    return store.list_worlds()


@router.get("/{world}", response_model=WorldView, responses=error_responses(409))
def get_world(world: WorldId, store: StoreDep, _: ViewerDep) -> dict[str, Any]:
    """A world with its policy version, event seq and market (its summary and version)."""
    info = store.get_world(world)
    version, _policy = read_policy(store, world)
    market = store.get_market(world)
    return {**info.model_dump(), "policy_version": version, "seq": store.world_seq(world),
            "market": None if market is None else market[1].summary(),
            "market_version": None if market is None else market[0]}


@router.patch("/{world}", response_model=WorldView, responses=error_responses(409))
def update_world(world: WorldId, body: WorldUpdate, svc: ServiceDep,
                 who: OperatorDep) -> dict[str, Any]:
    """Change a world's name, capital or mode (the fields sent; audited with old and new
    values); answers the world as it is now."""
    return patch(svc, world, body, who)


@router.delete("/{world}", response_model=WorldDeleted, responses=error_responses(
    409, s409="Strategies of the world hold positions (active, weight > 0, in a paper or "
              "live world); `?force=true` deletes it anyway."))
def delete_world(world: WorldId, svc: ServiceDep, who: OperatorDep,
                 force: Annotated[bool, Query(description="Delete even while strategies "
                                              "hold positions.")] = False) -> WorldDeleted:
    """Delete a world and all its data in one transaction (policies, states, events, keys,
    plans, returns, audit rows); the deletion is audited in the service's own log."""
    return delete(svc, world, force, who)
