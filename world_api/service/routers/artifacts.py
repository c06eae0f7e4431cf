"""Strategy artifacts (``qmtl.artifact``; format: ``qmtl.core.artifact_doc``): what a runner
runs of each strategy.

- ``PUT /worlds/{world}/strategies/{strategy_id}/artifact``: a developer stores the
  artifact of a strategy it owns (``qmtl submit`` does, after the backtest's updates);
  operators may store any. The artifact is checked (its format, its ``id`` is its content
  id, its ``strategy_id`` is the path's) and bounded (:data:`MAX_ARTIFACT_BYTES`); audited
  ``put_artifact``. The service stores it as text and never executes it.
- ``GET .../artifact``: the whole artifact for runners, operators and the strategy's owner;
  its metadata only (ids, kind, data needs; no code, no parameters) for anyone else.
- ``GET /worlds/{world}/artifacts``: every artifact's metadata (viewer).

>>> sorted({r.path for r in router.routes})
['/worlds/{world}/artifacts', '/worlds/{world}/strategies/{strategy_id}/artifact']
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from fastapi import APIRouter, Request

from qmtl.core.artifact_doc import ArtifactError, canonical_json, check_artifact, metadata
from qmtl.core.contracts import WorldId
from world_api.domain import strict
from world_api.service.auth import allows
from world_api.service.deps import Actor, DeveloperDep, ServiceDep, ViewerDep
from world_api.service.errors import HTTPError
from world_api.service.openapi import error_responses
from world_api.service.ownership import NotOwner
from world_api.service.store import NotFound
from world_api.service.world_eval import claim_by_artifact

router = APIRouter(prefix="/worlds/{world}", tags=["artifacts"])

MAX_ARTIFACT_BYTES = int(os.environ.get("QMTL_WORLD_MAX_ARTIFACT_BYTES", 512 * 1024))
"""The largest artifact stored (bytes of its canonical JSON; env
``QMTL_WORLD_MAX_ARTIFACT_BYTES``); a larger one gets 413. The request body limit (1 MiB)
bounds it too."""


def _owner(svc: Any, world: str, sid: str) -> str | None:
    owners = svc.owners.owners(world)
    if sid not in owners:
        raise NotFound(
            f"strategy {sid!r} has not reported to world {world!r}: submit it "
            "first (`qmtl submit` stores its artifact after its backtest)"
        )
    return owners[sid]


def may_read_code(who: Actor, owner: str | None) -> bool:
    """Whether ``who`` may read a strategy's code: runners and operators, and its owner.

    >>> dev = Actor(id="t", owner="alice", role="developer", request_id="")
    >>> may_read_code(dev, "alice"), may_read_code(dev, "bob")
    (True, False)
    """
    return allows(who.role, "runner") or (who.role == "developer" and who.owner == owner)


@router.put("/strategies/{strategy_id}/artifact", responses=error_responses(413, 422))
async def put_artifact(
    world: WorldId, strategy_id: str, request: Request, svc: ServiceDep, who: DeveloperDep
) -> dict[str, Any]:
    """Store the strategy's artifact (see the module docstring); returns its metadata."""
    raw = await request.body()
    if len(raw) > MAX_ARTIFACT_BYTES:
        raise HTTPError(
            413,
            f"artifact of {len(raw)} bytes exceeds the limit of "
            f"{MAX_ARTIFACT_BYTES} (QMTL_WORLD_MAX_ARTIFACT_BYTES)",
        )
    try:
        doc = check_artifact(strict.loads(raw))
    except (ArtifactError, ValueError) as exc:
        raise HTTPError(422, f"artifact: {exc}") from None
    if doc["strategy_id"] != strategy_id:
        raise HTTPError(
            422,
            f"artifact: its strategy_id {doc['strategy_id']!r} is not "
            f"{strategy_id!r}, the strategy it is stored for",
        )
    body = canonical_json(doc)
    if len(body.encode()) > MAX_ARTIFACT_BYTES:
        raise HTTPError(
            413,
            f"artifact of {len(body.encode())} bytes exceeds the limit of "
            f"{MAX_ARTIFACT_BYTES} (QMTL_WORLD_MAX_ARTIFACT_BYTES)",
        )

    def store() -> None:
        svc.store.get_world(world)
        claim_by_artifact(svc, world, who, strategy_id)  # evaluation: world (world_eval.py)
        with svc.lock(world):
            owner = _owner(svc, world, strategy_id)
        if who.role != "operator" and owner != who.owner:
            raise NotOwner(world, strategy_id, owner, who.owner)
        svc.store.put_artifact(world, doc, body, who.name, who.request_id)

    await asyncio.to_thread(store)
    return metadata(doc)


@router.get("/strategies/{strategy_id}/artifact", responses=error_responses())
def get_artifact(
    world: WorldId, strategy_id: str, svc: ServiceDep, who: ViewerDep
) -> dict[str, Any]:
    """The strategy's artifact, whole or its metadata (see the module docstring); 404 when
    it has none."""
    svc.store.get_world(world)
    doc = svc.store.artifact(world, strategy_id)
    if doc is None:
        raise NotFound(
            f"strategy {strategy_id!r} has no artifact in world {world!r}: `qmtl submit` stores one"
        )
    with svc.lock(world):
        owner = svc.owners.owners(world).get(strategy_id)
    return doc if may_read_code(who, owner) else metadata(doc)


@router.get("/artifacts", responses=error_responses())
def list_artifacts(world: WorldId, svc: ServiceDep, _: ViewerDep) -> list[dict[str, Any]]:
    """Every artifact of the world: strategy, artifact and graph ids, kind, size, who
    stored it and when."""
    svc.store.get_world(world)
    return svc.store.artifact_list(world)
