"""Stages decided by the world: each strategy is in ``backtest``, ``paper`` or ``live``, moved
by the policy's ``promotion`` rules (pure; no I/O).

A strategy keeps one record per mode of the updates it sends (``MetricsUpdate.mode``; see
:mod:`world_api.domain.records`): its latest metrics and its bars (a backtest's latest run;
a forward stage's summed over its runs). The records are kept apart: the backtest record
promotes to paper, the paper record to live, and the record of the stage a strategy is in
may demote it one stage back.

- ``backtest -> paper``: the backtest record has ``paper.min_bars`` bars and passes
  ``paper.gates``;
- ``paper -> live``: the paper record has ``live.min_paper_bars`` bars and passes
  ``live.gates``; with ``approval: operator`` the strategy then waits (``pending``) until an
  operator approves it (:func:`approve`), with ``approval: auto`` it moves at once;
- demotion: when any ``demote`` comparison holds on the record of the current stage's mode,
  ``live -> paper`` or ``paper -> backtest``.

Each move is a :class:`StageMove` (the world stores it as an event).

>>> from world_api.domain.policy import Promotion
>>> rules = Promotion.model_validate({"paper": {"min_bars": 2, "gates": {"sharpe": ">= 1"}},
...     "live": {"min_paper_bars": 2, "approval": "operator"}})
>>> st = StageState()
>>> st.record("backtest", "r1", 3, {"sharpe": 1.2})
>>> [m.to for m in decide(rules, st)], st.stage
(['paper'], 'paper')
>>> st.record("paper", "r2", 5, {"sharpe": 0.9})
>>> decide(rules, st), st.pending
([], True)
>>> approve(rules, st, "alice").reason
'approved by alice: paper record 5 bars'
>>> st.stage
'live'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from world_api.domain.policy import Gate, Promotion
from world_api.domain.records import Records, StageRecord

Stage = Literal["backtest", "paper", "live"]
STAGES: tuple[Stage, ...] = ("backtest", "paper", "live")


class NotAwaitingApproval(ValueError):
    """An approval for a strategy that does not wait for one (the message says why)."""


@dataclass(frozen=True)
class StageMove:
    """One change of a strategy's stage.

    >>> StageMove("paper", "live", "approved by bob").to
    'live'
    """

    frm: Stage
    to: Stage
    reason: str


@dataclass
class StageState:
    """One strategy's stage, whether it waits for approval, and its records per mode (the
    strategy's own :class:`~world_api.domain.records.Records`, stored with it).

    >>> s = StageState(); s.record("paper", "r", 10, {"sharpe": 1.0})
    >>> s.of("paper").n_bars, StageState.from_dict(s.to_dict()).stage
    (10, 'backtest')
    """

    stage: Stage = "backtest"
    pending: bool = False
    records: Records = field(default_factory=Records)

    def record(self, mode: str, run_id: str, n_bars: int, metrics: dict[str, float]) -> None:
        """Note an update of ``mode`` from ``run_id`` (its bar count so far, its metrics)."""
        self.records.add(mode, run_id, n_bars, metrics, [], None)

    def of(self, mode: str) -> StageRecord:
        """The record of ``mode`` (empty when none)."""
        return self.records.of(mode)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable form (the records are stored with the strategy's state)."""
        return {"stage": self.stage, "pending": self.pending}

    @classmethod
    def from_dict(cls, d: dict[str, Any], records: Records | None = None) -> StageState:
        """The state :meth:`to_dict` wrote, over the strategy's ``records``."""
        stage = d.get("stage", "backtest")
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
        return cls(stage=stage, pending=bool(d.get("pending", False)),
                   records=records if records is not None else Records())


def _failures(gates: dict[str, Gate], metrics: dict[str, float], min_bars: int, n_bars: int,
              what: str) -> list[str]:
    out = [f"{what} record {n_bars} bars < {min_bars}"] if n_bars < min_bars else []
    for metric, gate in gates.items():
        value = metrics.get(metric)
        if value is None:
            out.append(f"{what} record has no {metric}")
        elif not gate.check(value):
            out.append(f"{what} {gate.describe(metric, value)}")
    return out


def _demoting(rules: Promotion, metrics: dict[str, float]) -> str | None:
    for metric, gate in rules.demote.items():
        value = metrics.get(metric)
        if value is not None and gate.check(value):
            return f"{metric} {value:.4g} {gate}"
    return None


def blockers(rules: Promotion, st: StageState) -> list[str]:
    """Why ``st`` does not move up now (empty when it may: in live, nothing is above).

    >>> rules = Promotion.model_validate({"paper": {"min_bars": 500}})
    >>> blockers(rules, StageState())
    ['backtest record 0 bars < 500']
    """
    if st.stage == "backtest":
        rec, rule = st.of("backtest"), rules.paper
        return _failures(rule.gates, rec.metrics, rule.min_bars, rec.n_bars, "backtest")
    if st.stage == "paper":
        rec, live = st.of("paper"), rules.live
        return _failures(live.gates, rec.metrics, live.min_paper_bars, rec.n_bars, "paper")
    return []


def decide(rules: Promotion, st: StageState) -> list[StageMove]:
    """Apply the rules to ``st`` (changed in place); return the moves (at most one up, or one
    down). A strategy that waits for approval stops waiting when its paper record no longer
    qualifies."""
    if st.stage != "backtest":
        why = _demoting(rules, st.of(st.stage).metrics)
        if why is not None:
            frm = st.stage
            st.stage, st.pending = ("paper" if frm == "live" else "backtest"), False
            return [StageMove(frm, st.stage, f"demoted: {frm} {why}")]
    if st.stage == "live":
        return []
    failing = blockers(rules, st)
    if st.stage == "paper" and rules.live.approval == "operator":
        st.pending = not failing
        return []
    if failing:
        return []
    frm = st.stage
    rec = st.of(frm)
    st.stage = "paper" if frm == "backtest" else "live"
    return [StageMove(frm, st.stage, f"promoted: {frm} record {rec.n_bars} bars passes the "
                                     f"{st.stage} rules")]


def approve(rules: Promotion, st: StageState, actor: str) -> StageMove:
    """An operator's approval of a waiting ``paper -> live`` promotion
    (:class:`NotAwaitingApproval` when the strategy does not wait for one).

    >>> approve(Promotion(), StageState(), "bob")
    Traceback (most recent call last):
    ...
    world_api.domain.stages.NotAwaitingApproval: it is in backtest, not waiting for approval ...
    """
    if st.stage != "paper" or not st.pending:
        why = "; ".join(blockers(rules, st)) or (
            "approval is auto" if st.stage == "paper" else "nothing above live")
        raise NotAwaitingApproval(
            f"it is in {st.stage}, not waiting for approval to go live ({why})")
    st.stage, st.pending = "live", False
    return StageMove("paper", "live",
                     f"approved by {actor}: paper record {st.of('paper').n_bars} bars")


# -- hooks of the world engine (world_api.domain.evaluator) --------------------------------
def state_of(s: Any) -> StageState:
    """The stage state of a :class:`~world_api.domain.strategy_state.StrategyState`
    (created in backtest on first use).

    >>> from world_api.domain.strategy_state import StrategyState
    >>> state_of(StrategyState("a")).stage
    'backtest'
    """
    if s.stage is None:
        s.stage = StageState(records=s.records)
    elif isinstance(s.stage, dict):  # as stored
        s.stage = StageState.from_dict(s.stage, s.records)
    return s.stage


def _changes(engine: Any, s: Any, moves: list[StageMove]) -> list[dict[str, Any]]:
    """The fields of the engine's ``Change`` for each move (the engine makes them)."""
    if moves:
        engine.dirty.add(s.sid)
    return [{"strategy_id": s.sid, "active": s.active,
             "weight": s.weight if s.active else 0.0, "reason": m.reason, "stage": m.to}
            for m in moves]


def on_update(engine: Any, s: Any, update: Any) -> list[dict[str, Any]]:
    """After ``update`` of strategy ``s`` (the engine added it to its mode's record): apply
    the world's promotion rules; the fields of a ``Change`` for each move (``stage`` set)."""
    st = state_of(s)
    rules = engine.policy.promotion
    return [] if rules is None else _changes(engine, s, decide(rules, st))


def on_policy(engine: Any, before: Promotion | None) -> list[dict[str, Any]]:
    """After a policy change: when the world starts managing stages every strategy's stage
    is announced; then the rules are applied to each."""
    rules = engine.policy.promotion
    if rules is None:
        return []
    out = []
    for sid in sorted(engine.strategies):
        s = engine.strategies[sid]
        st = state_of(s)
        moves = decide(rules, st)
        if before is None and not moves:
            moves = [StageMove(st.stage, st.stage, f"stages managed by the world: {st.stage}")]
        engine.dirty.add(sid)
        out += _changes(engine, s, moves)
    return out


def approve_in(engine: Any, strategy_id: str, actor: str) -> list[dict[str, Any]]:
    """An operator's approval of ``strategy_id``'s promotion to live in ``engine``
    (KeyError when it never reported, :class:`NotAwaitingApproval` when it waits for none
    or the world does not manage stages)."""
    s = engine.strategies[strategy_id]
    rules = engine.policy.promotion
    if rules is None:
        raise NotAwaitingApproval("the world's policy has no promotion section: no stages")
    return _changes(engine, s, [approve(rules, state_of(s), actor)])


def view_fields(engine: Any, s: Any) -> dict[str, Any]:
    """``stage`` (None when the world does not manage stages), ``awaiting_approval`` and
    ``stage_hints`` (why it does not move up) for a strategy's view."""
    rules = engine.policy.promotion
    if rules is None:
        return {"stage": None, "awaiting_approval": False, "stage_hints": []}
    st = state_of(s)
    return {"stage": st.stage, "awaiting_approval": st.pending,
            "stage_hints": blockers(rules, st)}
