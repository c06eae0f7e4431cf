"""Managing worlds over HTTP: the bodies and the work of ``PATCH``/``DELETE /worlds/{world}``
and the filters of ``GET /worlds/{world}/strategies`` (the routers stay thin).

Listing filters: ``active`` (true/false), ``status`` (active, candidate, rejected), ``q`` (a
case-insensitive substring of the strategy id), ``sort`` (``rank``: ranked first by rank,
then by id, the default; ``id``; ``weight``, ``score``, ``n_bars``: largest first, ties by
id), ``limit`` (1 to 1000; all when not given) and ``cursor``. A page that stops short of
the end gives the next page's cursor in the ``X-Next-Cursor`` header: an opaque token that
holds the last row's sort key, so a strategy that reports between pages moves no other row
from one page to the next (keyset paging, not offsets).

>>> from world_api.domain.evaluator import StrategyView
>>> v = [StrategyView(strategy_id=s, status="candidate", active=False, weight=0.0, rank=r,
...      score=None, n_bars=n, metrics={}, hints=[], contribution=0.0)
...      for s, r, n in [("b", 2, 5), ("a", None, 9), ("c", 1, 7)]]
>>> page, nxt = select_views(v, sort="n_bars", limit=2)
>>> [x.strategy_id for x in page], [x.strategy_id for x in select_views(v, cursor=nxt,
...     sort="n_bars")[0]]
(['a', 'c'], ['b'])
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from qmtl.core.contracts import no_control_chars
from world_api.domain.evaluator import StrategyView
from world_api.service.deps import Actor
from world_api.service.errors import HTTPError
from world_api.service.state import WorldService, read_policy
from world_api.service.world_admin_store import HoldsPositions

Sort = Literal["rank", "id", "weight", "score", "n_bars"]
Status = Literal["active", "candidate", "rejected"]
MAX_LIMIT = 1000


class WorldUpdate(BaseModel):
    """``PATCH /worlds/{world}``: the fields to change (at least one).

    >>> WorldUpdate(capital=5e5).model_dump(exclude_none=True)
    {'capital': 500000.0}
    """

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, max_length=200)
    capital: float | None = Field(None, gt=0, allow_inf_nan=False)
    mode: Literal["backtest", "paper", "live"] | None = None


class WorldDeleted(BaseModel):
    """What ``DELETE /worlds/{world}`` removed: rows per table, and the strategies that held
    positions (deleted anyway when ``forced``).

    >>> WorldDeleted(world="w", forced=False, holders=[], rows={"events": 3}).rows["events"]
    3
    """

    world: str
    forced: bool
    holders: list[str]
    rows: dict[str, int]


def patch(svc: WorldService, world: str, body: WorldUpdate, who: Actor) -> dict[str, Any]:
    """Apply a :class:`WorldUpdate` (422 when it changes nothing or a name holds a control
    character); the world as stored now, with its policy version and seq."""
    changes = body.model_dump(exclude_none=True)
    if not changes:
        raise HTTPError(422, "nothing to update: send name, capital or mode")
    if "name" in changes:
        try:
            no_control_chars(changes["name"])
        except ValueError as exc:
            raise HTTPError(422, f"name: {exc}") from None
    with svc.lock(world):
        info = svc.store.update_world(world, changes, actor=who.name, request_id=who.request_id)
    version, _ = read_policy(svc.store, world)
    market = svc.store.get_market(world)
    return {**info.model_dump(), "policy_version": version, "seq": svc.store.world_seq(world),
            "market": None if market is None else market[1].summary(),
            "market_version": None if market is None else market[0]}


def delete(svc: WorldService, world: str, force: bool, who: Actor) -> WorldDeleted:
    """Delete ``world`` (409 naming the holders while strategies hold positions, unless
    ``force``) and drop its in-memory engine."""
    with svc.lock(world):
        try:
            out = svc.store.delete_world(world, force, actor=who.name,
                                         request_id=who.request_id)
        except HoldsPositions as exc:
            raise HTTPError(409, str(exc)) from None
        finally:
            svc.forget(world)
            if svc.relay is not None:
                svc.relay.forget_world(world)
    return WorldDeleted(**out)


def _key(sort: Sort) -> Callable[[StrategyView], list[Any]]:
    if sort == "id":
        return lambda v: [v.strategy_id]
    if sort == "rank":
        return lambda v: [v.rank is None, v.rank or 0, v.strategy_id]
    if sort == "score":
        return lambda v: [v.score is None, -(v.score or 0.0), v.strategy_id]
    if sort == "weight":
        return lambda v: [-v.weight, v.strategy_id]
    return lambda v: [-v.n_bars, v.strategy_id]


def encode_cursor(sort: str, key: list[Any]) -> str:
    """The opaque cursor after a row with sort ``key``.

    >>> decode_cursor(encode_cursor("id", ["a"]), "id")
    ['a']
    """
    raw = json.dumps([sort, key], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> list[Any]:
    """The sort key in ``cursor``; 422 when it is not one this listing gave for ``sort``.

    >>> decode_cursor("bad", "id")
    Traceback (most recent call last):
    ...
    world_api.service.errors.HTTPError: cursor: not a cursor this listing gave
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        made_for, key = json.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        raise HTTPError(422, "cursor: not a cursor this listing gave") from None
    if made_for != sort or not isinstance(key, list):
        raise HTTPError(422, f"cursor: made for sort={made_for!r}, not sort={sort!r}")
    return key


def select_views(
    views: Sequence[StrategyView],
    *,
    active: bool | None = None,
    status: Status | None = None,
    q: str | None = None,
    sort: Sort = "rank",
    limit: int | None = None,
    cursor: str | None = None,
) -> tuple[list[StrategyView], str | None]:
    """``(page, next cursor or None)``: the views that pass the filters, in ``sort`` order,
    after ``cursor``, at most ``limit`` (see the module docstring)."""
    key = _key(sort)
    needle = q.casefold() if q else None
    rows = [v for v in views
            if (active is None or v.active == active)
            and (status is None or v.status == status)
            and (needle is None or needle in v.strategy_id.casefold())]
    rows.sort(key=key)
    if cursor is not None:
        after = decode_cursor(cursor, sort)
        try:
            rows = [v for v in rows if key(v) > after]
        except TypeError:
            raise HTTPError(422, "cursor: not a cursor this listing gave") from None
    if limit is None or len(rows) <= limit:
        return rows, None
    page = rows[:limit]
    return page, encode_cursor(sort, key(page[-1]))
