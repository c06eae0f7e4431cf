"""Evaluation events: each backtest record the world's evaluator writes (policy
``evaluation: world``, ``qmtl world evaluate``) is an event on the world's event stream, so a
roll of the market's window shows one ``reevaluated`` event per strategy.

They are stored in the events table, in the world's seq order, like control events: an empty
``strategy_id`` and ``{"evaluation": {...}}`` as JSON in ``reason`` (the
:class:`~qmtl.core.contracts.EvaluationEvent` without world, seq and ts), written in the same
transaction as the record and after the activation events the record caused; the stream sends
them as ``event: evaluation`` (old subscribers ignore that event name). An update is an
evaluation when the world evaluates itself, it is a backtest and its run id is a world
evaluation's (``world-<artifact id[:12]>-...``, :func:`world_api.domain.evaluation.run_id`).

>>> from world_api.domain.evaluator import WorldEngine
>>> from world_api.domain.policy import Policy
>>> u = MetricsUpdate(world="w", strategy_id="s", run_id="world-abc-1", seq=1,
...                   mode="backtest", as_of=9, n_bars=2, metrics={"sharpe": 0.5, "cagr": 1.0},
...                   returns=[(5, 0.01), (9, 0.0)], fingerprint="fp")
>>> body = evaluation_body(WorldEngine(Policy()), u, market_version=3)
>>> body["kind"], body["first"], body["last"], body["metrics"]
('evaluated', 5, 9, {'sharpe': 0.5})
>>> ev = ActivationEvent(world="w", seq=7, ts=1, strategy_id=CONTROL, active=False,
...                      weight=0.0, reason=json.dumps({"evaluation": body}), policy_version=0)
>>> as_evaluation(ev).market_version, as_evaluation(ev).seq
(3, 7)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection, insert

from qmtl.core.contracts import ActivationEvent, EvaluationEvent, MetricsUpdate
from world_api.domain.evaluator import WorldEngine
from world_api.service import tables as t

CONTROL = ""
"""The ``strategy_id`` of the row (that of control events: no strategy's activation)."""

KEY_METRICS: tuple[str, ...] = (
    "sharpe", "total_return", "max_drawdown", "volatility", "sortino", "turnover",
)
"""The record's metrics an evaluation event carries."""


def is_evaluation(u: MetricsUpdate) -> bool:
    """Whether ``u`` is a record the world's evaluator writes (see the module docstring).

    >>> u = MetricsUpdate(world="w", strategy_id="s", run_id="world-a-1", seq=1,
    ...                   mode="backtest", as_of=1, n_bars=1, metrics={})
    >>> is_evaluation(u), is_evaluation(u.model_copy(update={"run_id": "mine"}))
    (True, False)
    """
    return u.mode == "backtest" and u.run_id.startswith("world-")


def evaluation_body(
    engine: WorldEngine, u: MetricsUpdate, market_version: int | None
) -> dict[str, Any]:
    """The stored body of the evaluation event of ``u``; call it before the engine ingests
    ``u``: the kind is ``reevaluated`` when the strategy's backtest record already holds a
    world evaluation of the same artifact (a run id with the same prefix)."""
    prefix = u.run_id[: u.run_id.rfind("-") + 1]
    s = engine.strategies.get(u.strategy_id)
    before = s.records.of("backtest").runs if s is not None else {}
    again = any(r.startswith(prefix) and r != u.run_id for r in before)
    return {
        "strategy_id": u.strategy_id,
        "run_id": u.run_id,
        "kind": "reevaluated" if again else "evaluated",
        "market_version": market_version,
        "fingerprint": u.fingerprint,
        "first": int(u.returns[0][0]) if u.returns else None,
        "last": int(u.returns[-1][0]) if u.returns else None,
        "n_bars": u.n_bars,
        "metrics": {k: float(u.metrics[k]) for k in KEY_METRICS if k in u.metrics},
    }


def evaluation_writer(
    world: str, bodies: list[dict[str, Any]], now: int
) -> Callable[[Connection, int], int]:
    """An ``extra`` for ``Store.commit`` that stores one evaluation event per body after
    ``seq`` and returns the new seq."""

    def write(conn: Connection, seq: int) -> int:
        for body in bodies:
            seq += 1
            conn.execute(insert(t.events).values(
                world=world, seq=seq, ts=now, strategy_id=CONTROL, active=0, weight=0.0,
                reason=json.dumps({"evaluation": body}, sort_keys=True), policy_version=0))
        return seq

    return write


def as_evaluation(ev: ActivationEvent) -> EvaluationEvent | None:
    """The EvaluationEvent a stored event row carries, or None for any other row.

    >>> as_evaluation(ActivationEvent(world="w", seq=1, ts=0, strategy_id="s", active=True,
    ...                               weight=1.0, reason="r", policy_version=1)) is None
    True
    """
    if ev.strategy_id != CONTROL or not ev.reason.startswith('{"evaluation"'):
        return None
    body = json.loads(ev.reason)["evaluation"]
    return EvaluationEvent(world=ev.world, seq=ev.seq, ts=ev.ts, **body)
