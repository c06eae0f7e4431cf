"""``GET /worlds/{world}/audit``: who did what, oldest first.

>>> [r.path for r in router.routes]
['/worlds/{world}/audit']
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from world_api.service.deps import StoreDep, ViewerDep

router = APIRouter(prefix="/worlds/{world}/audit", tags=["audit"])


@router.get("")
def audit(world: str, store: StoreDep, _: ViewerDep) -> list[dict[str, Any]]:
    """The world's audit log."""
    store.get_world(world)
    return store.audit_log(world)
