"""The store's part of operating a world: overrides that hold and the steps of two-phase
plan applies (a mixin of :class:`~world_api.service.store.Store`, like ``audit_log``).

Control events (the apply's steps) are stored in the events table, in the world's seq
order, with an empty ``strategy_id`` and the :class:`~qmtl.core.contracts.ControlEvent`
as JSON in ``reason``; the event stream sends them as ``event: control`` (old subscribers
ignore that event name).

>>> import tempfile, os
>>> from world_api.service.store import WorldInfo, open_store
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "w.db"))
>>> store.create_world(WorldInfo(id="w"))
>>> store.control_step("w", "a1", "p1", "freeze", target={}).step
'freeze'
>>> store.frozen("w")
('a1', 'p1', 'freeze')
>>> store.control_step("w", "a1", "p1", "unfreeze", outcome="rolled back").seq
2
>>> store.frozen("w") is None
True
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from qmtl.core.contracts import ActivationEvent, ControlEvent
from world_api.domain.overrides import Override
from world_api.service import tables as t

CONTROL = ""
"""The ``strategy_id`` of a control event's row."""


def as_control(ev: ActivationEvent) -> ControlEvent | None:
    """The ControlEvent a stored event row carries, or None for an activation event.

    >>> ev = ActivationEvent(world="w", seq=1, ts=0, strategy_id="s", active=True,
    ...                      weight=1.0, reason="r", policy_version=1)
    >>> as_control(ev) is None
    True
    """
    if ev.strategy_id != CONTROL or ev.reason.startswith('{"evaluation"'):
        return None  # an activation event, or an evaluation event (evaluation_events.py)
    return ControlEvent(world=ev.world, seq=ev.seq, ts=ev.ts, **json.loads(ev.reason))


class OperatorStore:
    """Overrides and applies of a store: a mixin whose host gives ``transaction()`` and
    ``_audit`` (see the module docstring).

    >>> from world_api.service.store import Store
    >>> issubclass(Store, OperatorStore)
    True
    """

    transaction: Any
    _audit: Any

    # -- overrides ---------------------------------------------------------------------------
    def override_writer(self, world: str, sid: str, ov: Override | None) -> Any:
        """An ``extra`` for ``Store.commit`` that stores ``ov`` for ``sid`` (or removes
        the override when None) in the commit's transaction."""
        o = t.overrides.c

        def write(conn: Connection, seq: int) -> int:
            conn.execute(delete(t.overrides).where(o.world == world, o.strategy_id == sid))
            if ov is not None:
                conn.execute(insert(t.overrides).values(
                    world=world, strategy_id=sid, body=ov.model_dump_json()))
            return seq

        return write

    def overrides(self, world: str) -> list[Override]:
        """The world's stored overrides (expired ones included), by strategy."""
        o = t.overrides.c
        with self.transaction() as conn:
            rows = conn.execute(select(o.body).where(o.world == world)
                                .order_by(o.strategy_id)).scalars().all()
        return [Override.model_validate_json(b) for b in rows]

    # -- applies -----------------------------------------------------------------------------
    def control(self, conn: Connection, world: str, seq: int, apply_id: str, plan_id: str,
                step: str, target: dict[str, float] | None = None,
                outcome: str | None = None) -> int:
        """Store one apply step in ``conn``'s transaction: its control event at ``seq + 1``
        and the apply's row; return the new seq."""
        now = time.time_ns()
        seq += 1
        body = {"step": step, "apply_id": apply_id, "plan_id": plan_id, "outcome": outcome}
        conn.execute(insert(t.events).values(
            world=world, seq=seq, ts=now, strategy_id=CONTROL, active=0, weight=0.0,
            reason=json.dumps(body), policy_version=0))
        if step == "freeze":
            conn.execute(insert(t.applies).values(
                id=apply_id, world=world, plan_id=plan_id, step=step,
                target=json.dumps(target or {}), created=now, updated=now))
        else:
            conn.execute(update(t.applies).where(t.applies.c.id == apply_id)
                         .values(step=step, outcome=outcome, updated=now))
        return seq

    def control_step(self, world: str, apply_id: str, plan_id: str, step: str,
                     target: dict[str, float] | None = None, outcome: str | None = None,
                     actor: str = "system", request_id: str = "") -> ControlEvent:
        """Store one apply step in a transaction of its own (with an audit row when it
        rolls back or recovers); return its control event."""
        w = t.worlds.c
        with self.transaction() as conn:
            seq = int(conn.execute(select(w.seq).where(w.id == world).with_for_update())
                      .scalar_one())
            seq = self.control(conn, world, seq, apply_id, plan_id, step, target, outcome)
            conn.execute(update(t.worlds).where(w.id == world).values(seq=seq))
            if outcome == "rolled back" or actor == "recovery":  # the apply row says the rest
                self._audit(conn, world, actor, f"apply_{step}",
                            {"apply_id": apply_id, "plan_id": plan_id, "outcome": outcome},
                            request_id)
        return ControlEvent(world=world, seq=seq, ts=time.time_ns(), step=step,  # type: ignore[arg-type]
                            apply_id=apply_id, plan_id=plan_id, outcome=outcome)

    def open_applies(self, world: str | None = None) -> list[tuple[str, str, str, str]]:
        """``(apply_id, world, plan_id, last step)`` of applies not unfrozen yet."""
        a = t.applies.c
        query = select(a.id, a.world, a.plan_id, a.step).where(a.step != "unfreeze")
        if world is not None:
            query = query.where(a.world == world)
        with self.transaction() as conn:
            rows = conn.execute(query.order_by(a.created)).all()
        return [(r[0], r[1], r[2], r[3]) for r in rows]

    def frozen(self, world: str) -> tuple[str, str, str] | None:
        """``(apply_id, plan_id, step)`` of the apply that holds the world's orders now."""
        rows = self.open_applies(world)
        return (rows[0][0], rows[0][2], rows[0][3]) if rows else None

    def last_change_seq(self, world: str) -> int:
        """The seq of the world's latest activation event (control events left out): a
        plan is applicable while it has not moved."""
        e = t.events.c
        with self.transaction() as conn:
            seq = conn.execute(select(func.max(e.seq)).where(
                e.world == world, e.strategy_id != CONTROL)).scalar()
        return int(seq or 0)

    def applies_of(self, world: str, ids: Sequence[str] = ()) -> list[dict[str, Any]]:
        """The world's applies (or those with ``ids``), oldest first."""
        a = t.applies.c
        query = select(a.id, a.plan_id, a.step, a.outcome, a.target).where(a.world == world)
        if ids:
            query = query.where(a.id.in_(list(ids)))
        with self.transaction() as conn:
            rows = conn.execute(query.order_by(a.created)).all()
        return [{"apply_id": r[0], "plan_id": r[1], "step": r[2], "outcome": r[3],
                 "target": json.loads(r[4])} for r in rows]
