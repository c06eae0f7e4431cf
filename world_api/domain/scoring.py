"""Eligibility and scoring of a world's strategies (pure functions over the policy and numpy
rows): which gates a strategy fails, and the cross-sectional score and rank of the eligible
ones.

>>> import numpy as np
>>> from world_api.domain.policy import parse_policy
>>> gate_failures(parse_policy("min_bars: 10\\ngates: {sharpe: '>= 1'}"), 5, {"sharpe": 0.5})
['only 5 bars < min_bars 10: extend --start', 'sharpe 0.5 < gate 1']
>>> score, rank = np.full(3, np.nan), np.zeros(3, dtype=np.int64)
>>> X = np.array([[1.0], [3.0], [2.0]])
>>> score_and_rank(X, np.array([1.0]), np.array([True, True, False]), np.arange(3), score, rank)
array([1, 0])
>>> rank.tolist()
[2, 1, 0]
"""

from __future__ import annotations

import numpy as np

from world_api.domain.alpha_checks import oos_sharpe
from world_api.domain.incremental import combine, exact_mean_sd
from world_api.domain.policy import Policy
from world_api.domain.world_returns import annualization


def gate_failures(policy: Policy, n_bars: int, metrics: dict[str, float]) -> list[str]:
    """Why a strategy with ``n_bars`` and ``metrics`` is not eligible (empty when it is).

    >>> gate_failures(Policy(), 0, {})
    []
    """
    out = []
    if n_bars < policy.min_bars:
        out.append(f"only {n_bars} bars < min_bars {policy.min_bars}: extend --start")
    for metric, gate in policy.gates.items():
        value = metrics.get(metric)
        if value is None:
            out.append(f"{metric} missing: the world's gate needs it")
        elif not gate.check(value):
            out.append(gate.describe(metric, value))
    return out


def oos_failure(policy: Policy, returns: np.ndarray, ts: np.ndarray) -> str | None:
    """Why a record's last ``policy.oos_sharpe.bars`` returns fail the out-of-sample gate
    (None when it passes or there is no such gate); periods per year from the record's
    times ``ts`` (all of them, :func:`world_api.domain.world_returns.annualization`).

    >>> from world_api.domain.policy import parse_policy
    >>> p = parse_policy("oos_sharpe: {bars: 3, min: 1}")
    >>> oos_failure(p, np.array([0.01, 0.02]), np.arange(2))
    'only 2 bars in the record < oos_sharpe bars 3'
    """
    gate = policy.oos_sharpe
    if gate is None:
        return None
    r = np.asarray(returns, dtype=np.float64)
    if r.size < gate.bars:
        return f"only {r.size} bars in the record < oos_sharpe bars {gate.bars}"
    t = np.asarray(ts, dtype=np.int64)
    value = oos_sharpe(r, gate.bars, annualization(t))
    return None if value >= gate.min else gate.describe(value)


def score_and_rank(
    X: np.ndarray,
    weights: np.ndarray,
    eligible: np.ndarray,
    sid_rank: np.ndarray,
    score: np.ndarray,
    rank: np.ndarray,
) -> np.ndarray:
    """Fill ``score`` (sum of weight * z-score of each score metric, the columns of ``X``,
    across eligible rows; a metric with no spread adds 0, a missing one -3) and ``rank``
    (1 = best, ties by ``sid_rank``; 0 = not eligible) in place; return the eligible rows in
    rank order.

    >>> s, r = np.full(1, np.nan), np.zeros(1, dtype=np.int64)
    >>> score_and_rank(np.ones((1, 1)), np.ones(1), np.array([False]), np.zeros(1), s, r)
    array([], dtype=int64)
    """
    score[:] = np.nan
    rank[:] = 0
    idx = np.flatnonzero(eligible)
    if not len(idx):
        return idx
    rows = X[idx]
    stats: list[tuple[float, float] | None] = []
    for j in range(len(weights)):
        col = rows[:, j]
        finite = col[np.isfinite(col)]
        # exact sums: the statistics (to the last bit) do not depend on arrival order, and
        # equal the incremental ones of world_api.domain.incremental.ScoreBook
        stats.append(exact_mean_sd(finite) if len(finite) else None)
    total = combine(np.ascontiguousarray(rows.T), weights, stats)
    score[idx] = total
    order = idx[np.lexsort((sid_rank[idx], -total))]
    rank[order] = np.arange(1, len(order) + 1)
    return order
