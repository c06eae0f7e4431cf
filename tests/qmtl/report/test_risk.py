"""The tear sheet's risk tables against independent references: the worst drawdowns against
a hand-worked curve and a plain loop, alpha and beta against numpy's least squares."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from qmtl.report import from_result, plot, tear_sheet
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


@pytest.mark.parametrize("symbol", [None, "BBB"])
def test_alpha_and_beta_equal_numpys_least_squares(result, symbol):
    from qmtl.report.sheet import benchmark_of
    from qmtl.report.stats import alpha_beta, bar_returns

    run = from_result(result)
    _, bench = benchmark_of(run, symbol)
    r, b = run.rows.returns, bar_returns(bench)
    slope, intercept = np.polyfit(b, r, 1)
    ab = alpha_beta(r, b, run.periods_per_year)
    assert ab["beta"] == pytest.approx(slope, rel=1e-9)
    assert ab["alpha_bar"] == pytest.approx(intercept, rel=1e-9, abs=1e-15)
    # annualized linearly on the run's own periods a year (from its bars: see metrics.json)
    assert ab["alpha"] == pytest.approx(intercept * run.periods_per_year, rel=1e-9, abs=1e-13)
    assert ab["correlation"] == pytest.approx(np.corrcoef(r, b)[0, 1], rel=1e-9)
    # the page shows the same numbers, exact in data-value
    page = tear_sheet(run, symbol)
    shown = dict(re.findall(r'data-stat="(\w+)" data-value="([^"]*)"', page))
    assert float(shown["beta"]) == pytest.approx(slope, rel=1e-9)
    alpha = intercept * run.periods_per_year
    assert float(shown["alpha"]) == pytest.approx(alpha, rel=1e-9, abs=1e-13)
    assert float(shown["benchmark_total_return"]) == pytest.approx(bench[-1] - 1, rel=1e-12)


def test_alpha_and_beta_of_a_known_line_and_of_nothing():
    from qmtl.report.stats import alpha_beta

    rng = np.random.default_rng(7)
    b = rng.normal(0, 0.01, 500)
    r = 0.0002 - 0.7 * b + rng.normal(0, 0.001, 500)
    design = np.column_stack([np.ones(500), b])
    (a0, b0), *_ = np.linalg.lstsq(design, r, rcond=None)
    ab = alpha_beta(r, b, 365.0)
    assert (ab["beta"], ab["alpha"]) == pytest.approx((b0, a0 * 365.0), rel=1e-9)
    assert all(np.isnan(v) for v in alpha_beta(r, np.zeros(500), 252.0).values())
    assert all(np.isnan(v) for v in alpha_beta(r[:1], b[:1], 252.0).values())


class LongShort:
    """A long/short book over two symbols whose bars differ (BBB lacks every third bar)."""

    @staticmethod
    def result():
        from connectors.data.synthetic import generate_bars
        from qmtl import Strategy, backtest

        class Reverting(Strategy):
            symbols = ["AAA", "BBB"]

            def signal(self, bars):
                return (bars.close.zscore(20) * -0.4).clip(-1.0, 1.0)

        data = {"AAA": generate_bars(400, seed=21), "BBB": generate_bars(400, seed=22)}
        keep = np.arange(400) % 3 != 1
        data["BBB"] = {k: v[keep] for k, v in data["BBB"].items()}
        return backtest(Reverting, data=data)


def test_long_short_gross_and_net_exposure_equal_pandas(tmp_path):

    from qmtl.report import load_run

    res = LongShort.result()
    run = load_run(res.write(tmp_path / "ls"))
    rows = run.rows
    bars = res.bars.to_pandas()
    held = bars.pivot(index="ts", columns="symbol", values="weight").ffill().fillna(0.0)
    np.testing.assert_allclose(rows.long, held.clip(lower=0).sum(axis=1), atol=1e-12)
    np.testing.assert_allclose(rows.short, held.clip(upper=0).sum(axis=1), atol=1e-12)
    np.testing.assert_allclose(rows.net, held.sum(axis=1), atol=1e-12)
    np.testing.assert_allclose(rows.long - rows.short, rows.gross, atol=1e-12)
    assert rows.has_shorts and (rows.short < 0).any() and (rows.long > 0).any()
    from tests.qmtl.report.test_page import drawn

    figs = drawn(tear_sheet(run))
    exposure = next(f for f in figs.values()
                    if f["layout"]["title"]["text"].startswith("Exposure"))
    assert [t["name"] for t in exposure["data"]] == ["long", "short", "gross", "net"]


def test_a_long_only_book_shows_gross_exposure_and_the_strategys_name(result, tmp_path):
    from qmtl.report import load_run
    from tests.qmtl.report.test_page import drawn

    run = load_run(result.write(tmp_path / "some-run-folder"))
    assert run.name == "some-run-folder"
    figs = drawn(tear_sheet(run))
    equity = figs[0]
    assert [t["name"] for t in equity["data"]] == ["Cross", "buy & hold, equal weight"]
    menu = equity["layout"]["updatemenus"][0]
    assert [b["label"] for b in menu["buttons"]] == ["linear", "log"]
    assert menu["buttons"][1]["args"] == [{"yaxis.type": "log"}]
    exposure = next(f for f in figs.values() if f["layout"]["title"]["text"] == "Gross exposure")
    assert [t["name"] for t in exposure["data"]] == ["gross"]
    assert run.rows.has_shorts is False
    assert plot(run).data[0].name == "Cross"
