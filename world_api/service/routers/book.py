"""``POST /worlds/{world}/book/returns``: the world's book reports its marked-to-market return.

The book of a world's account (``qmtl.book``) marks its positions at each bar's prices; the
return of its equity over the bar, fills and fees included, is what the world realized. Once
a world's book has posted a point, the world's realized return is the book's (see
``world_api.domain.world_returns``) and no longer the sum of the strategies' self-reported
paper and live returns; the pro forma return is unchanged. A runner's token (or an
operator's) may post; a point at a time the book has posted already is ignored, so a book
re-sends what it is not sure arrived. Bad input is a 422 that says where (``[2].return``).

>>> [r.path for r in router.routes]
['/worlds/{world}/book/returns']
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from qmtl.core.contracts import Int64, WorldId
from world_api.domain.changes import Change
from world_api.domain.evaluator import WorldEngine
from world_api.service.deps import RunnerDep, ServiceDep
from world_api.service.errors import HTTPError
from world_api.service.openapi import error_responses

router = APIRouter(prefix="/worlds/{world}/book", tags=["book"])

MAX_BOOK_POINTS = 100_000
"""The most points one request may carry."""


class BookPoint(BaseModel):
    """One bar of the book: its close time (ns) and the account's marked-to-market return
    over it (equity after / equity before - 1), finite and above -1.

    >>> BookPoint.model_validate({"ts": 5, "return": 0.01}).return_
    0.01
    """

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    ts: Int64
    return_: float = Field(alias="return", gt=-1.0, allow_inf_nan=False)


class BookPosted(BaseModel):
    """The answer: how many points were new (``accepted``) and how many the world had
    already (``ignored``), and where the world's realized return now comes from.

    >>> BookPosted(world="w", accepted=2, ignored=0, realized_source="book").accepted
    2
    """

    world: str
    accepted: int
    ignored: int
    realized_source: Literal["book", "records"]


@router.post("/returns", response_model=BookPosted, responses=error_responses())
def post_book_returns(
    world: WorldId,
    points: list[BookPoint],
    svc: ServiceDep,
    who: RunnerDep,
) -> dict[str, Any]:
    """Make the book's points part of the world's realized return (see the module)."""
    if not points:
        raise HTTPError(422, "body: no points (a list of {\"ts\", \"return\"})")
    if len(points) > MAX_BOOK_POINTS:
        raise HTTPError(422, f"body: {len(points)} points, at most {MAX_BOOK_POINTS}")
    for i in range(1, len(points)):
        if points[i].ts <= points[i - 1].ts:
            raise HTTPError(422, f"[{i}].ts: {points[i].ts} is not after [{i - 1}].ts "
                                 f"{points[i - 1].ts} (points in time order, one per bar)")
    pairs = [(p.ts, p.return_) for p in points]
    new = [0]

    def change(engine: WorldEngine) -> tuple[list[Change], dict[str, Any]] | None:
        try:
            new[0] = engine.book_returns(pairs)
        except ValueError as exc:
            raise HTTPError(422, str(exc)) from None
        if not engine.realized.dirty and not engine.realized.reset:
            return None  # every point was there already: nothing to write
        detail = {"points": len(pairs), "accepted": new[0], "first": pairs[0][0],
                  "last": pairs[-1][0]}
        return [], {"actor": who.id, "action": "book_returns", "detail": detail,
                    "request_id": who.request_id}

    svc.write(world, change)
    return {"world": world, "accepted": new[0], "ignored": len(pairs) - new[0],
            "realized_source": "book"}
