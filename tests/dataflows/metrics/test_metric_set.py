"""The metric set against empyrical; split and merge invariance; the shared fast path."""

from __future__ import annotations

import math

import empyrical as ep
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.metrics import MetricSet
from qmtl.core.contracts import METRIC_NAMES

RNG = np.random.default_rng(42)
RETURNS = RNG.normal(5e-4, 1e-2, 2_000)


@pytest.mark.parametrize("ppy", [252.0, 525_600.0])
def test_equal_to_empyrical(ppy):
    got = MetricSet(ppy).update(RETURNS[:700]).update(RETURNS[700:]).get()
    assert got["cagr"] == pytest.approx(ep.cagr(RETURNS, annualization=ppy), rel=1e-9)
    assert got["volatility"] == pytest.approx(
        ep.annual_volatility(RETURNS, annualization=ppy), rel=1e-9)
    assert got["sharpe"] == pytest.approx(ep.sharpe_ratio(RETURNS, annualization=ppy), rel=1e-9)
    assert got["sortino"] == pytest.approx(ep.sortino_ratio(RETURNS, annualization=ppy), rel=1e-9)
    assert got["max_drawdown"] == pytest.approx(-ep.max_drawdown(RETURNS), rel=1e-9)
    assert got["calmar"] == pytest.approx(ep.calmar_ratio(RETURNS, annualization=ppy), rel=1e-9)
    assert got["total_return"] == pytest.approx(ep.cum_returns_final(RETURNS), rel=1e-9)


def test_names_and_finite_values():
    m = MetricSet(252).update([0.0, 0.0])
    assert list(m.get()) == list(METRIC_NAMES)
    assert all(math.isfinite(v) for v in m.finite().values())
    assert math.isnan(m.get()["sharpe"])


# returns on a 1 bp grid: a drawdown of 1e-10 would make calmar's relative error ~1e-6 from
# rounding alone (1 - equity/peak cancels), which says nothing about the merge logic
returns_lists = st.lists(st.integers(-5_000, 5_000).map(lambda k: k / 1e4), min_size=1,
                         max_size=60)


def _close(a: dict, b: dict, rel: float = 1e-12) -> None:
    for k in a:
        if math.isnan(a[k]):
            assert math.isnan(b[k]), k
        else:
            assert b[k] == pytest.approx(a[k], rel=rel, abs=1e-12), k


@settings(max_examples=200, deadline=None)
@given(returns_lists, st.lists(st.integers(1, 10), min_size=1, max_size=8))
def test_split_and_merge_invariance(r, cuts):
    r = np.array(r)
    whole = MetricSet(252).update(r, turnover=np.abs(r), gross=np.abs(r)).get()
    pieces, pos, i = [], 0, 0
    while pos < len(r):
        pieces.append(r[pos: pos + cuts[i % len(cuts)]])
        pos += cuts[i % len(cuts)]
        i += 1
    split = MetricSet(252)
    merged = MetricSet(252)
    for p in pieces:
        split.update(p, turnover=np.abs(p), gross=np.abs(p))
        part = MetricSet(252).update(p, turnover=np.abs(p), gross=np.abs(p))
        merged += part
    _close(whole, split.get())
    # merging re-associates products and 1 - x of nearly equal numbers: a drawdown of 1e-4
    # carries ~1e-12 relative rounding, which calmar (cagr / drawdown) passes on
    _close(whole, merged.get(), rel=1e-9)


def test_constant_returns_have_no_spread_however_split():
    r = np.full(3, 0.0071)
    whole = MetricSet(252).update(r).get()
    split = MetricSet(252).update(r[:1]).update(r[1:]).get()
    assert math.isnan(whole["sharpe"]) and math.isnan(split["sharpe"])
    assert whole["volatility"] == split["volatility"] == 0.0
