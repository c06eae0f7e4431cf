"""The service's part of world-side evaluation (``evaluation: world`` in the policy, see
:mod:`world_api.domain.evaluation`): in such a world a developer's ``qmtl submit`` posts no
backtest, so storing a new strategy's artifact is what claims the strategy for its owner
(as a first update does elsewhere), in one audited write.

>>> import tempfile, os
>>> from world_api.service.store import WorldInfo, open_store
>>> from world_api.service.state import WorldService
>>> from world_api.service.deps import Actor
>>> svc = WorldService(open_store(os.path.join(tempfile.mkdtemp(), "w.db")))
>>> svc.store.create_world(WorldInfo(id="w"))
>>> alice = Actor(id="t", owner="alice", role="developer", request_id="")
>>> claim_by_artifact(svc, "w", alice, "s")  # the world's policy evaluates on the client
False
"""

from __future__ import annotations

from typing import Any

from world_api.service.deps import Actor
from world_api.service.state import WorldService


def evaluates(svc: WorldService, world: str) -> bool:
    """Whether ``world``'s policy says ``evaluation: world``."""
    with svc.lock(world):
        return svc.engine(world).policy.evaluation == "world"


def claim_by_artifact(svc: WorldService, world: str, who: Actor, sid: str) -> bool:
    """In a world that evaluates itself, claim the new strategy ``sid`` for ``who`` (the
    ownership checks of a first update: 403 for a runner, a restricted submitter or another
    owner's id, 422 for a bad id); False (nothing done) in any other world or when ``sid``
    has an owner already."""
    if not evaluates(svc, world):
        return False

    def change(engine: Any) -> Any:
        if sid in svc.owners.owners(world):
            return None
        claims = svc.owners.claims(world, who, [sid], {}, engine.strategies)
        if not claims:
            return None
        return [], {
            "actor": who.name,
            "action": "claim_by_artifact",
            "detail": {"strategy_id": sid, "owner": claims[sid]},
            "request_id": who.request_id,
            "extra": svc.owners.writer(world, claims),
        }

    svc.write(world, change)
    return True
