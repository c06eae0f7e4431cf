"""Min/max bucketing keeps every extreme, so a plotted drawdown bottoms where the run did."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from qmtl.report import from_result
from qmtl.report.charts import plotted
from qmtl.report.downsample import minmax_indices
from qmtl.report.sheet import figures

values = arrays(np.float64, st.integers(1, 3000),
                elements=st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))


@settings(max_examples=200, deadline=None)
@given(y=values, points=st.integers(4, 500))
def test_minmax_keeps_extremes_and_every_bucket_range(y, points):
    keep = minmax_indices(y, points)
    assert (np.diff(keep) > 0).all()  # sorted, no repeats
    assert keep[0] == 0 and keep[-1] == len(y) - 1
    assert len(keep) <= max(len(y), points + 2)
    assert y[keep].min() == y.min() and y[keep].max() == y.max()
    if len(y) > points:  # each bucket's min and max are kept
        width = -(-len(y) // (points // 2))
        for start in range(0, len(y), width):
            chunk = y[start:start + width]
            inside = y[keep[(keep >= start) & (keep < start + width)]]
            assert inside.min() == chunk.min() and inside.max() == chunk.max()


@settings(max_examples=100, deadline=None)
@given(y=values, points=st.integers(4, 300))
def test_plotted_points_draw_the_same_extremes(y, points):
    y = y.copy()
    y[::7] = np.nan
    keep = plotted(y, points)
    finite = y[np.isfinite(y)]
    if len(finite):
        assert np.nanmin(y[keep]) == finite.min() and np.nanmax(y[keep]) == finite.max()
    else:
        assert len(keep) == 0


def test_plotted_drawdown_bottoms_at_the_true_max_drawdown(result):
    run = from_result(result)
    figs = dict(figures(run, points=50))  # few points: most bars are left out
    dd = np.asarray(figs["Drawdown"].data[0].y)
    assert len(dd) < len(result.ts) / 5
    assert -dd.min() == pytest.approx(result.metrics["max_drawdown"], rel=1e-12)
    eq = np.asarray(figs["Equity"].data[0].y)
    assert eq.min() == result.equity.min() and eq.max() == result.equity.max()
