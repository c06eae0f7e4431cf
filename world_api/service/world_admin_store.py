"""Managing worlds in the store: update one (name, capital, mode), delete one with its data.

A mixin of :class:`~world_api.service.store.Store` (like ``audit_log.py``): it needs the
store's ``transaction()`` and ``_audit``.

**Positions.** The world does not see orders or fills; what it knows is its own decision:
a strategy *holds positions* when its stored state says it is active with a weight above
zero, in a world whose mode is ``paper`` or ``live`` (a ``backtest`` world's decisions move
no orders, so it holds none). Deleting a world that holds positions is refused
(:class:`HoldsPositions`, HTTP 409) unless forced.

**Deleting** removes, in one transaction, the world's row and every row of every table with
a ``world`` column (policies, strategy states, events, idempotency keys, plans, returns,
audit rows and whatever later migrations add), then records the deletion in the service's
own audit log (``world`` None), so who deleted what survives the world.

>>> import tempfile, os
>>> from world_api.service.store import WorldInfo, open_store
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "w.db"))
>>> store.create_world(WorldInfo(id="w1", name="demo"))
>>> store.update_world("w1", {"capital": 5e5}).capital
500000.0
>>> store.delete_world("w1")["rows"]["policies"]
1
>>> [w.id for w in store.list_worlds()]
[]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from sqlalchemy import Connection, delete, select, update

from world_api.service import tables as t

LIVE_MODES = ("paper", "live")
"""World modes whose active strategies hold positions (see the module docstring)."""


class HoldsPositions(Exception):
    """A world cannot be deleted: strategies hold positions (the store maps it to 409).

    >>> str(HoldsPositions("w", ["a", "b"]))
    "world 'w' has strategies holding positions (a, b); pass force to delete it anyway"
    """

    def __init__(self, world: str, holders: list[str]) -> None:
        self.world, self.holders = world, holders
        super().__init__(
            f"world {world!r} has strategies holding positions ({', '.join(holders)}); "
            "pass force to delete it anyway"
        )


def world_tables() -> list[Any]:
    """Every table keyed by a ``world`` column (what a world's deletion empties), by name.

    >>> {"events", "metric_keys", "overrides"} <= {tb.name for tb in world_tables()}
    True
    """
    return sorted((tb for tb in t.metadata.tables.values() if "world" in tb.c),
                  key=lambda tb: tb.name)


class WorldAdmin:
    """Update and delete worlds: a mixin whose host gives ``transaction()``, ``_audit`` (see
    :class:`~world_api.service.audit_log.AuditLog`) and ``get_world`` (which raises the
    store's NotFound for an unknown world).

    >>> from world_api.service.store import Store
    >>> issubclass(Store, WorldAdmin)
    True
    """

    transaction: Callable[[], AbstractContextManager[Connection]]
    _audit: Callable[..., None]
    get_world: Callable[[str], Any]

    def update_world(self, world: str, changes: dict[str, Any], actor: str = "system",
                     request_id: str = "") -> Any:
        """Set the given fields (``name``, ``capital``, ``mode``; validated as
        :class:`~world_api.service.store.WorldInfo`) and audit old and new values; returns
        the world as stored now (NotFound if unknown)."""
        w = t.worlds.c
        while True:
            before = self.get_world(world)  # NotFound if unknown
            after = type(before).model_validate({**before.model_dump(), **changes})
            diff = {k: [getattr(before, k), getattr(after, k)] for k in ("name", "capital", "mode")
                    if getattr(before, k) != getattr(after, k)}
            if not diff:
                return after
            with self.transaction() as conn:
                # only if unchanged since read: a concurrent update makes this one read again
                done = conn.execute(
                    update(t.worlds)
                    .where(w.id == world, w.name == before.name, w.capital == before.capital,
                           w.mode == before.mode)
                    .values({k: v[1] for k, v in diff.items()}))
                if done.rowcount == 1:
                    self._audit(conn, world, actor, "update_world", {"changed": diff},
                                request_id)
                    return after

    def position_holders(self, world: str, conn: Connection | None = None) -> list[str]:
        """The strategies of ``world`` holding positions (see the module docstring), sorted;
        NotFound if the world is unknown."""
        if conn is None:
            self.get_world(world)
            with self.transaction() as own:
                return self.position_holders(world, own)
        mode = conn.execute(select(t.worlds.c.mode).where(t.worlds.c.id == world)).scalar()
        if mode not in LIVE_MODES:
            return []
        s = t.strategy_state.c
        rows = conn.execute(select(s.strategy_id, s.state).where(s.world == world)).all()
        held: list[str] = []
        for sid, body in rows:
            state = json.loads(str(body))
            if state.get("active") and float(state.get("weight") or 0.0) > 0.0:
                held.append(str(sid))
        return sorted(held)

    def delete_world(self, world: str, force: bool = False, actor: str = "system",
                     request_id: str = "") -> dict[str, Any]:
        """Delete ``world`` and all its rows in one transaction (see the module docstring);
        :class:`HoldsPositions` unless ``force`` when strategies hold positions, NotFound if
        unknown. Returns ``{"world", "forced", "holders", "rows": {table: count}}``."""
        w = t.worlds.c
        self.get_world(world)  # NotFound if unknown
        with self.transaction() as conn:
            # the world's lock (PostgreSQL: FOR UPDATE; SQLite: the write lock taken at BEGIN)
            there = conn.execute(select(w.id).where(w.id == world).with_for_update()).first()
            holders = self.position_holders(world, conn) if there else []
            if holders and not force:
                raise HoldsPositions(world, holders)
            rows = {tb.name: conn.execute(delete(tb).where(tb.c.world == world)).rowcount
                    for tb in world_tables()}
            rows["worlds"] = conn.execute(delete(t.worlds).where(w.id == world)).rowcount
            result = {"world": world, "forced": bool(holders) and force, "holders": holders,
                      "rows": rows}
            if there:
                self._audit(conn, None, actor, "delete_world", result, request_id)
        if not there:  # deleted by someone else meanwhile
            self.get_world(world)
        return result
