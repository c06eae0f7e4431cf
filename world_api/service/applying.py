"""Running a two-phase plan apply (see :mod:`world_api.domain.apply`) and recovering the
applies a crash interrupted.

:func:`run_apply` stores ``freeze`` (one apply per world at a time), then ``drain`` and
waits ``drain`` seconds (metric updates go on meanwhile), then, under the world's lock,
``switch``: it checks the world's allocation has not moved since the plan was made (else
409 and roll back) and commits the new activations and weights, the plan flagged applied
and the ``switch`` control event in one transaction; then ``unfreeze``. A failure before
the switch commits rolls back at once (``unfreeze``, outcome ``rolled back``).
:func:`recover` runs when the service starts: an apply left frozen is finished (its switch
committed) or rolled back.

Drain protocol: the world cannot see a broker, so ``drain`` is a bounded wait. Gates that
received ``freeze`` send no new order; the wait gives orders already sent the time to be
acknowledged before the weights change.

>>> import tempfile, os
>>> from world_api.service.store import WorldInfo, open_store
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "w.db"))
>>> store.create_world(WorldInfo(id="w"))
>>> _ = store.control_step("w", "a1", "p1", "freeze", target={})
>>> recover(store)
[('a1', 'rolled back')]
"""

from __future__ import annotations

import os
import time
import uuid
from typing import Any

from qmtl.core.contracts import ActivationEvent, ControlEvent
from world_api.domain.apply import check_target, recovery, switch
from world_api.service.errors import HTTPError
from world_api.service.state import WorldService
from world_api.service.store import Store

PAUSE_ENV = "QMTL_WORLD_APPLY_PAUSE"
"""Seconds to wait after each stored step (tests kill the server between steps)."""


def _pause() -> None:
    pause = float(os.environ.get(PAUSE_ENV, "0") or 0)
    if pause > 0:
        time.sleep(pause)


def _step(svc: WorldService, world: str, *args: Any, **kwargs: Any) -> ControlEvent:
    """Store one apply step, then wake the world's event streams to send it."""
    event = svc.store.control_step(world, *args, **kwargs)
    svc.tails.poke(world)
    return event


def run_apply(svc: WorldService, world: str, plan_id: str, overrides: dict[str, float],
              actor: Any, drain: float) -> dict[str, Any]:
    """Apply plan ``plan_id`` of ``world`` with weight ``overrides`` in four steps (see the
    module docstring); return ``{world, plan_id, apply_id, events, control}``. 409 when the
    plan was applied, the world changed since it was made or another apply is running;
    422 for weights out of bounds."""
    store = svc.store
    base_seq, body, applied = store.get_plan(world, plan_id)
    if applied:
        raise HTTPError(409, f"plan {plan_id!r} was already applied")
    who = {"actor": actor.id, "request_id": actor.request_id}
    apply_id = uuid.uuid4().hex
    with svc.lock(world):
        engine = svc.engine(world)
        busy = store.frozen(world)
        if busy is not None:
            raise HTTPError(409, f"world {world!r} is applying plan {busy[1]!r} ({busy[2]})")
        if store.get_plan(world, plan_id)[2]:  # applied while this request waited
            raise HTTPError(409, f"plan {plan_id!r} was already applied")
        _unchanged(store, world, base_seq)
        target = {**body["proposed"], **overrides}
        try:
            check_target(target, engine.policy.allocation.max_weight)
        except ValueError as exc:
            raise HTTPError(422, str(exc)) from None
        unknown = sorted(set(target) - set(engine.strategies))
        if unknown:
            raise HTTPError(422, f"strategy {unknown[0]!r} has not reported to {world!r}")
        control = [_step(svc, world, apply_id, plan_id, "freeze", target=target, **who)]
    events: list[ActivationEvent] = []
    try:
        _pause()
        control.append(_step(svc, world, apply_id, plan_id, "drain", **who))
        time.sleep(drain)  # updates still arrive meanwhile; the switch checks them
        _pause()
        with svc.lock(world):
            try:
                _unchanged(store, world, base_seq)
                engine = svc.engine(world)
                changes = switch(engine, target, "allocation apply")
                switched: list[int] = []

                def mark(conn: Any, seq: int) -> int:
                    switched.append(store.control(conn, world, seq, apply_id, plan_id,
                                                  "switch"))
                    return switched[-1]

                detail = {"plan_id": plan_id, "apply_id": apply_id, "weights": target,
                          "overrides": overrides}
                events = store.commit(world, engine, changes, actor=actor.id, action="apply",
                                      detail=detail, request_id=actor.request_id,
                                      plan=plan_id, extra=mark)
                svc.tails.poke(world)
            except BaseException:
                svc.forget(world)  # the engine may hold the half-made switch: reload it
                raise
    except BaseException:
        _step(svc, world, apply_id, plan_id, "unfreeze", outcome="rolled back", **who)
        raise
    control.append(ControlEvent(world=world, seq=switched[-1], ts=time.time_ns(),
                                step="switch", apply_id=apply_id, plan_id=plan_id))
    _pause()
    control.append(_step(svc, world, apply_id, plan_id, "unfreeze",
                                      outcome="applied", **who))
    svc.version += 1
    if svc.relay is not None:
        svc.relay.publish(world)
    return {"world": world, "plan_id": plan_id, "apply_id": apply_id,
            "events": [e.model_dump() for e in events],
            "control": [c.model_dump() for c in control]}


def _unchanged(store: Store, world: str, base_seq: int) -> None:
    """409 unless the world's allocation is still the one the plan was made on."""
    seq = store.last_change_seq(world)
    if seq != base_seq:
        raise HTTPError(409, f"world {world!r} changed since the plan (seq {base_seq} -> "
                        f"{seq}): make a new plan")


def recover(store: Store) -> list[tuple[str, str]]:
    """Unfreeze every apply a crash left open: ``applied`` when its switch committed,
    ``rolled back`` otherwise; return ``(apply_id, outcome)`` of each."""
    done = []
    for apply_id, world, plan_id, step in store.open_applies():
        outcome = "applied" if recovery(step) == "finish" else "rolled back"  # type: ignore[arg-type]
        store.control_step(world, apply_id, plan_id, "unfreeze", outcome=outcome,
                           actor="recovery")
        done.append((apply_id, outcome))
    return done

