"""Strategy owners and a world's submitters (see ``world_api.service.ownership``):

- ``GET /worlds/{world}/owners``: every strategy's owner (viewer);
- ``GET /worlds/{world}/strategies/{strategy_id}/owner``: one strategy's (viewer);
- ``PUT /worlds/{world}/strategies/{strategy_id}/owner``: an operator transfers it
  (``{"owner": "bob"}``, or ``null`` for operator-owned), audited ``transfer_owner``;
- ``GET``/``PUT /worlds/{world}/submitters``: which owners may submit (``{"owners":
  [...]}``, ``null``: any developer), the PUT by an operator, audited ``set_submitters``.

>>> sorted({r.path for r in router.routes})[:2]
['/worlds/{world}/owners', '/worlds/{world}/strategies/{strategy_id}/owner']
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, computed_field

from qmtl.core.contracts import WorldId
from world_api.domain.evaluator import Change, WorldEngine
from world_api.service.deps import OperatorDep, ServiceDep, ViewerDep
from world_api.service.openapi import error_responses
from world_api.service.store import NotFound

router = APIRouter(prefix="/worlds/{world}", tags=["owners"])

OwnerName = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f]+$")
]


class StrategyOwner(BaseModel):
    """A strategy's owner (None: operator-owned).

    >>> StrategyOwner(world="w", strategy_id="s", owner=None).operator_owned
    True
    """

    world: str
    strategy_id: str
    owner: str | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def operator_owned(self) -> bool:
        """True when only operators may post to it."""
        return self.owner is None


class OwnerRequest(BaseModel):
    """``PUT .../owner``: the new owner (a token owner's name), or null: operator-owned.

    >>> OwnerRequest(owner="bob").owner
    'bob'
    """

    model_config = ConfigDict(extra="forbid")
    owner: OwnerName | None


class Submitters(BaseModel):
    """Which owners may submit to a world (None: any developer; operators always may).

    >>> Submitters(world="w", owners=None).owners is None
    True
    """

    model_config = ConfigDict(extra="forbid")
    world: str = ""
    owners: list[OwnerName] | None = Field(None, max_length=1000)


def _owner_of(svc: Any, world: str, sid: str) -> str | None:
    owners = svc.owners.owners(world)
    if sid not in owners:
        raise NotFound(f"strategy {sid!r} has not reported to world {world!r}")
    return owners[sid]


@router.get("/owners", responses=error_responses())
def list_owners(world: WorldId, svc: ServiceDep, _: ViewerDep) -> list[StrategyOwner]:
    """Every strategy of the world with its owner, by id."""
    svc.store.get_world(world)
    with svc.lock(world):
        owners = dict(svc.owners.owners(world))
    return [StrategyOwner(world=world, strategy_id=s, owner=o) for s, o in sorted(owners.items())]


@router.get("/strategies/{strategy_id}/owner", responses=error_responses())
def get_owner(world: WorldId, strategy_id: str, svc: ServiceDep, _: ViewerDep) -> StrategyOwner:
    """The strategy's owner (null: operator-owned); 404 if it never reported."""
    svc.store.get_world(world)
    with svc.lock(world):
        owner = _owner_of(svc, world, strategy_id)
    return StrategyOwner(world=world, strategy_id=strategy_id, owner=owner)


@router.put("/strategies/{strategy_id}/owner", responses=error_responses(409))
def transfer_owner(
    world: WorldId, strategy_id: str, req: OwnerRequest, svc: ServiceDep, who: OperatorDep
) -> StrategyOwner:
    """Give the strategy to another owner (operator); audited with the old and new owner."""

    def change(engine: WorldEngine) -> tuple[list[Change], dict[str, Any]]:
        old = _owner_of(svc, world, strategy_id)
        return [], {
            "actor": who.name,
            "action": "transfer_owner",
            "detail": {"strategy_id": strategy_id, "from": old, "to": req.owner},
            "request_id": who.request_id,
            "extra": svc.owners.transfer_writer(world, strategy_id, req.owner),
        }

    svc.write(world, change)
    return StrategyOwner(world=world, strategy_id=strategy_id, owner=req.owner)


@router.get("/submitters", responses=error_responses())
def get_submitters(world: WorldId, svc: ServiceDep, _: ViewerDep) -> Submitters:
    """Which owners may submit to the world (null: any developer)."""
    svc.store.get_world(world)
    with svc.lock(world):
        return Submitters(world=world, owners=svc.owners.submitters(world))


@router.put("/submitters", responses=error_responses(409))
def put_submitters(
    world: WorldId, req: Submitters, svc: ServiceDep, who: OperatorDep
) -> Submitters:
    """Restrict which owners may submit (operator; ``null`` lifts the restriction);
    audited. Operators may always submit."""
    owners = None if req.owners is None else sorted(set(req.owners))

    def change(engine: WorldEngine) -> tuple[list[Change], dict[str, Any]]:
        old = svc.owners.submitters(world)
        return [], {
            "actor": who.name,
            "action": "set_submitters",
            "detail": {"from": old, "to": owners},
            "request_id": who.request_id,
            "extra": svc.owners.submitters_writer(world, owners),
        }

    svc.write(world, change)
    return Submitters(world=world, owners=owners)
