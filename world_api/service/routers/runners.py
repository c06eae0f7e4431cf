"""The runners of a world (``qmtl world run``) and their leases (see
``world_api.service.runner_store``).

- ``POST /worlds/{world}/runners/{runner}/heartbeat`` (runner role): the runner's report
  and the strategies it wants; answers the strategies it holds until the next heartbeat.
- ``DELETE /worlds/{world}/runners/{runner}`` (runner role): it stops; its leases are free.
- ``GET /worlds/{world}/runners`` (viewer): each runner, its last heartbeat, whether it is
  alive, its strategies, their lag and last bar.

>>> sorted({r.path for r in router.routes})[0]
'/worlds/{world}/runners'
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from qmtl.core.contracts import WorldId
from world_api.service.deps import RunnerDep, ServiceDep, ViewerDep
from world_api.service.openapi import error_responses

router = APIRouter(prefix="/worlds/{world}/runners", tags=["runners"])

RunnerId = Annotated[str, Path(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.:-]+$")]


class Heartbeat(BaseModel):
    """A runner's heartbeat: what it wants to run, what it runs now, how long its leases
    last and its report.

    >>> Heartbeat(want=["a"]).ttl
    15.0
    """

    model_config = ConfigDict(extra="forbid")
    want: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=10_000
    )
    running: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=10_000
    )
    ttl: float = Field(15.0, gt=0, le=3600)
    report: dict[str, Any] = Field(default_factory=dict)


class Leases(BaseModel):
    """What a heartbeat gets back: the strategies the runner holds, and for how long.

    >>> Leases(world="w", runner="r", strategies=["a"], ttl=5.0).strategies
    ['a']
    """

    world: str
    runner: str
    strategies: list[str]
    ttl: float


@router.post("/{runner}/heartbeat", response_model=Leases, responses=error_responses(422))
async def heartbeat(
    world: WorldId, runner: RunnerId, hb: Heartbeat, svc: ServiceDep, _: RunnerDep
) -> Any:
    """Record the heartbeat and grant the runner its share of the leases it wants."""

    def grant() -> list[str]:
        svc.store.get_world(world)
        return svc.store.heartbeat(
            world, runner, hb.want, hb.report, int(hb.ttl * 1e9), running=hb.running
        )

    held = await asyncio.to_thread(grant)
    return Leases(world=world, runner=runner, strategies=held, ttl=hb.ttl)


@router.delete("/{runner}", responses=error_responses())
async def leave(world: WorldId, runner: RunnerId, svc: ServiceDep, _: RunnerDep) -> dict[str, Any]:
    """The runner stops: its leases are freed for the others at once."""

    def go() -> None:
        svc.store.get_world(world)
        svc.store.leave(world, runner)

    await asyncio.to_thread(go)
    return {"world": world, "runner": runner, "left": True}


@router.get("", responses=error_responses())
def runners(world: WorldId, svc: ServiceDep, _: ViewerDep) -> list[dict[str, Any]]:
    """Each runner with its last heartbeat (``seen``, epoch ns; ``age_s``), ``alive``
    (heard from within its leases' ``ttl``), the strategies it holds and its report."""
    svc.store.get_world(world)
    now = time.time_ns()
    out = []
    for r in svc.store.runner_list(world):
        ttl = float(r["report"].get("ttl", 15.0))
        age = (now - r["seen"]) / 1e9
        out.append({**r, "age_s": round(age, 3), "alive": age <= ttl})
    return out
