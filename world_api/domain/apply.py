"""Two-phase apply of an allocation plan, as a pure state machine.

An apply goes through four steps, each stored (with its control event) before the next
begins: **freeze** (the world's order gates hold new orders), **drain** (a bounded wait for
orders already in flight to be acknowledged), **switch** (the new activations and weights,
one transaction) and **unfreeze**. Only ``switch`` changes the allocation, and it is
atomic, so after a crash the stored step says everything: before ``switch`` the old
allocation is intact and recovery rolls back (unfreezes); at ``switch`` the new one is in
place and recovery finishes (unfreezes). Either way nothing stays frozen.

>>> [s for s in STEPS]
['freeze', 'drain', 'switch', 'unfreeze']
>>> next_step(None), next_step("drain"), next_step("unfreeze")
('freeze', 'switch', None)
>>> recovery("drain"), recovery("switch"), recovery("unfreeze")
('rollback', 'finish', None)
"""

from __future__ import annotations

from typing import Literal

from world_api.domain.evaluator import Change, WorldEngine
from world_api.domain.overrides import pin, select

Step = Literal["freeze", "drain", "switch", "unfreeze"]
STEPS: tuple[Step, ...] = ("freeze", "drain", "switch", "unfreeze")


def next_step(done: Step | None) -> Step | None:
    """The step after ``done`` (the first for None; None after the last).

    >>> next_step("freeze")
    'drain'
    """
    if done is None:
        return STEPS[0]
    i = STEPS.index(done)
    return STEPS[i + 1] if i + 1 < len(STEPS) else None


def recovery(done: Step) -> Literal["rollback", "finish"] | None:
    """What a restart does with an apply whose last stored step is ``done``: ``rollback``
    before the switch (the old allocation stands), ``finish`` after it, None when it ended.

    >>> recovery("freeze")
    'rollback'
    """
    if done == "unfreeze":
        return None
    return "finish" if done == "switch" else "rollback"


def frozen(done: Step | None) -> bool:
    """Whether the world's gates hold orders while the last stored step is ``done``.

    >>> [frozen(s) for s in (None, *STEPS)]
    [False, True, True, True, False]
    """
    return done is not None and done != "unfreeze"


def check_target(target: dict[str, float], max_weight: float) -> None:
    """ValueError unless every weight is in [0, ``max_weight``] and they sum to at most 1.

    >>> check_target({"a": 0.7, "b": 0.5}, 1.0)
    Traceback (most recent call last):
    ...
    ValueError: weights sum to 1.200000 > 1
    """
    for sid, w in target.items():
        if not (0.0 <= w <= max_weight):
            raise ValueError(f"weight of {sid!r} must be in [0, {max_weight}], got {w}")
    if sum(target.values()) > 1.0 + 1e-9:
        raise ValueError(f"weights sum to {sum(target.values()):.6f} > 1")


def switch(engine: WorldEngine, target: dict[str, float], reason: str) -> list[Change]:
    """Make ``target`` the world's allocation: its strategies active with their weights,
    every other one inactive; return the changes (exact: no ``min_change``). A strategy
    that never reported is a ValueError and nothing changes.

    >>> from world_api.domain.policy import parse_policy
    >>> from qmtl.core.contracts import MetricsUpdate
    >>> eng = WorldEngine(parse_policy("allocation: {mode: manual}"))
    >>> eng.ingest(MetricsUpdate(world="w", strategy_id="a", run_id="r", seq=1,
    ...     mode="backtest", as_of=1, n_bars=10, metrics={"sharpe": 1.0}, returns=[]))
    []
    >>> [(c.strategy_id, c.active, c.weight) for c in switch(eng, {"a": 0.5}, "plan p")]
    [('a', True, 0.5)]
    >>> eng.weights()
    {'a': 0.5}
    """
    unknown = sorted(sid for sid in target if sid not in engine.strategies)
    if unknown:
        raise ValueError(f"strategy {unknown[0]!r} has not reported to this world")
    changes: list[Change] = []
    for sid in sorted(set(engine.weights()) | set(target)):
        s = engine.strategies[sid]
        active, weight = sid in target, float(target.get(sid, 0.0))
        if active == s.active and (not active or abs(weight - s.weight) <= 1e-12):
            continue
        if active != s.active:
            s.changed_clock = engine.world_bars
        s.active, s.weight = active, weight
        # the engine's own bookkeeping of who is in (as its selection keeps it)
        (engine._active.add if active else engine._active.discard)(sid)
        (engine._recent_out.discard if active else engine._recent_out.add)(sid)
        engine.dirty.add(sid)
        changes.append(Change(strategy_id=sid, active=active, weight=weight, reason=reason))
    return changes


def proposal(engine: WorldEngine) -> dict[str, float]:
    """The allocation a plan proposes now: in allocation mode ``manual`` the one the latest
    selection left waiting (activations included); in ``auto`` the allocation of today's
    active set. Weight pins of overrides hold in both.

    >>> from world_api.domain.policy import parse_policy
    >>> proposal(WorldEngine(parse_policy("allocation: {mode: manual}")))
    {}
    """
    if engine.policy.allocation.mode == "manual":
        return dict(engine.pending)
    return pin(engine.proposed_weights(), engine.overrides, engine.clock())


def held_now(engine: WorldEngine) -> dict[str, float]:
    """Today's allocation with the overrides that hold now (what an override changes at
    once in allocation mode ``manual``): forced-inactive strategies out, forced-active ones
    in (at weight 0 unless pinned), pinned weights set.

    >>> from world_api.domain.policy import parse_policy
    >>> held_now(WorldEngine(parse_policy("allocation: {mode: manual}")))
    {}
    """
    now = engine.clock()
    current = engine.weights()
    chosen = select(current, engine.overrides, set(engine.strategies), now)
    return pin({sid: current.get(sid, 0.0) for sid in chosen}, engine.overrides, now)
