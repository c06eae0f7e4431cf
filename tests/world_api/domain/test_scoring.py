"""Scores and ranks against an independent reference (scipy's z-score), and gate hints."""

from __future__ import annotations

import numpy as np
from scipy.stats import zscore

from world_api.domain.policy import parse_policy
from world_api.domain.scoring import gate_failures, score_and_rank


def test_scores_are_weighted_z_scores_over_eligible_rows():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(12, 2))
    X[4, 1] = np.nan  # a missing metric costs -3
    eligible = np.ones(12, dtype=bool)
    eligible[[0, 7]] = False
    weights = np.array([0.7, 0.3])
    score, rank = np.full(12, np.nan), np.zeros(12, dtype=np.int64)
    order = score_and_rank(X, weights, eligible, np.arange(12), score, rank)

    idx = np.flatnonzero(eligible)
    want = np.zeros(len(idx))
    for j, w in enumerate(weights):
        col = X[idx, j]
        z = np.full(len(idx), -3.0)
        ok = np.isfinite(col)
        z[ok] = zscore(col[ok])
        want += w * z
    np.testing.assert_allclose(score[idx], want, rtol=1e-12, atol=1e-12)
    assert np.isnan(score[[0, 7]]).all() and rank[[0, 7]].tolist() == [0, 0]
    assert order.tolist() == idx[np.argsort(-want, kind="stable")].tolist()
    assert sorted(rank[idx].tolist()) == list(range(1, len(idx) + 1))


def test_ties_rank_by_id_and_a_flat_metric_adds_nothing():
    X = np.ones((3, 1))
    score, rank = np.full(3, np.nan), np.zeros(3, dtype=np.int64)
    order = score_and_rank(X, np.ones(1), np.ones(3, dtype=bool), np.array([2, 0, 1]), score,
                           rank)
    assert score.tolist() == [0.0, 0.0, 0.0] and order.tolist() == [1, 2, 0]


def test_gate_failures_say_what_is_missing_or_short():
    p = parse_policy("min_bars: 100\ngates: {sharpe: '>= 1', max_drawdown: '<= 0.2'}")
    assert gate_failures(p, 150, {"sharpe": 1.2, "max_drawdown": 0.1}) == []
    assert gate_failures(p, 50, {"sharpe": 1.2}) == [
        "only 50 bars < min_bars 100: extend --start",
        "max_drawdown missing: the world's gate needs it",
    ]
