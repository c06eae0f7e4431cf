"""``GET /worlds/{world}/audit``: who did what, newest first, a page at a time.

Query parameters: ``limit`` (1..1000, default 1000), ``before`` (the cursor: rows with an
``id`` below it; the ``X-Next-Cursor`` response header gives it for the next page, absent on
the last one), ``actor``, ``action`` (exact), ``not_action`` (rows of any other action),
``since``/``until`` (epoch ns, inclusive).

>>> [r.path for r in router.routes]
['/worlds/{world}/audit']
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from qmtl.core.contracts import WorldId
from world_api.service.deps import StoreDep, ViewerDep
from world_api.service.errors import HTTPError

router = APIRouter(prefix="/worlds/{world}/audit", tags=["audit"])

MAX_PAGE = 1000
"""The most rows one page holds."""
NEXT_CURSOR = "X-Next-Cursor"
"""The response header holding the ``before`` of the next page."""


class AuditRow(BaseModel):
    """One row of the audit log, as served.

    >>> AuditRow(id=1, ts=0, actor="0a1b2c3d", owner="ci", action="plan", detail={},
    ...          request_id="r").owner
    'ci'
    """

    id: int
    ts: int = Field(description="epoch ns")
    actor: str = Field(description="the token id of whoever acted")
    owner: str | None = Field(description="that token's owner (None: no token id)")
    action: str
    detail: dict[str, Any]
    request_id: str


@router.get("", response_model=list[AuditRow], responses={200: {"headers": {
    NEXT_CURSOR: {"description": "the `before` of the next page; absent on the last",
                  "schema": {"type": "string"}}}}})
def audit(
    world: WorldId,
    store: StoreDep,
    _: ViewerDep,
    response: Response,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="rows per page")] = MAX_PAGE,
    before: Annotated[int | None, Query(ge=1, description="cursor: rows with id below")] = None,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=200)] = None,
    not_action: Annotated[str | None, Query(max_length=200, description=(
        "leave out rows of this action (the dashboard: `post_metrics`)"))] = None,
    since: Annotated[int | None, Query(ge=0, description="epoch ns, inclusive")] = None,
    until: Annotated[int | None, Query(ge=0, description="epoch ns, inclusive")] = None,
) -> list[dict[str, Any]]:
    """One page of the world's audit log, newest first; ``X-Next-Cursor`` when more may
    follow."""
    store.get_world(world)
    if since is not None and until is not None and since > until:
        raise HTTPError(422, f"since ({since}) must not be after until ({until})")
    rows = store.audit_log(world, limit + 1, newest_first=True, before=before, actor=actor,
                           action=action, since=since, until=until, not_action=not_action)
    if len(rows) > limit:
        rows = rows[:limit]
        response.headers[NEXT_CURSOR] = str(rows[-1]["id"])
    return rows
