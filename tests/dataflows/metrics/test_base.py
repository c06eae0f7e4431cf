"""The metric contract: abstract methods, the shared Periods, snapshots of the old layout."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from dataflows import metrics
from dataflows.metrics import Metric, Moments, Periods


def test_a_metric_must_implement_the_contract():
    class Half(Metric):
        def get(self) -> float:
            return 0.0

    with pytest.raises(TypeError, match="update_periods"):
        Half()  # type: ignore[abstract]


def test_moments_equal_numpy_however_merged():
    x = np.random.default_rng(0).normal(3.0, 2.0, 101)
    m = Moments()
    for part in np.array_split(x, 7):
        m.merge(Moments.of(part))
    assert m.n == 101
    assert m.mean == pytest.approx(x.mean(), rel=1e-14)
    assert m.std() == pytest.approx(x.std(ddof=1), rel=1e-13)


def test_periods_uses_a_given_equity_only_when_it_agrees():
    r = np.array([0.1, 0.2])
    good = np.array([1.1, 1.32])
    assert Periods(r, 1.0, good).path is not None
    assert Periods(r, 1.0, good).path.tolist() == [1.0, 1.1, 1.32]
    wrong = np.array([9.0, 9.0])
    assert Periods(r, 1.0, wrong).path.tolist() == pytest.approx([1.0, 1.1, 1.32])
    assert Periods(r, 1.0, good[:1]).path.tolist() == pytest.approx([1.0, 1.1, 1.32])


def test_every_path_metric_gives_the_same_bits_from_a_shared_periods():
    r = np.random.default_rng(9).normal(0, 0.02, 257)
    for cls in (metrics.TotalReturn, metrics.MaxDrawdown, metrics.Linearity):
        alone, shared = cls(), cls()
        alone.update(r[:100]).update(r[100:])
        shared.update_periods(Periods(r[:100]))
        start = shared.equity
        shared.update_periods(Periods(r[100:], start))
        assert pickle.dumps(vars(alone)) == pickle.dumps(vars(shared)), cls


def test_a_snapshot_naming_the_old_moments_class_still_loads():
    # recovery snapshots written before the package named the class ``_Moments``
    m = metrics.Sharpe(252).update([0.01, 0.02, -0.01])
    blob = pickle.dumps(m, protocol=2)  # classes named as text, no frames
    old = blob.replace(b"dataflows.metrics.base\nMoments\n", b"dataflows.metrics\n_Moments\n")
    assert old != blob
    back = pickle.loads(old)
    assert back.get() == m.get()
