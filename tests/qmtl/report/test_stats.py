"""The tear sheet's statistics against independent references: the engine's own series,
pandas, and quantstats where it computes the same statistic by the same definition."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from qmtl.report import from_result
from qmtl.report.load import rows_of
from qmtl.report.stats import (
    drawdown,
    monthly_table,
    period_returns,
    period_sums,
    rolling_sharpe_vol,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    qs = pytest.importorskip("quantstats")


def series(rows) -> pd.Series:
    return pd.Series(rows.returns, index=pd.to_datetime(rows.timeline, unit="ns", utc=True))


def test_rows_rebuild_the_engines_series(result):
    rows = from_result(result).rows
    np.testing.assert_array_equal(rows.timeline, result.ts)
    np.testing.assert_array_equal(rows.curve, result.equity)
    np.testing.assert_allclose(rows.returns, result.returns, rtol=0, atol=1e-13)
    np.testing.assert_allclose(rows.turnover, result.turnover, rtol=0, atol=1e-13)
    np.testing.assert_allclose(rows.gross, result.gross, rtol=0, atol=1e-13)


def test_rows_rebuild_the_engines_series_when_bars_differ(gappy):
    rows = rows_of(gappy.bars, "gappy")  # as from a run folder
    np.testing.assert_array_equal(rows.timeline, gappy.ts)
    np.testing.assert_allclose(rows.returns, gappy.returns, rtol=0, atol=1e-13)
    # a symbol without a bar while the gross cap rescales the others changes weight where
    # the folder has no row for it: only those bars may differ from the engine's
    off = ~np.isclose(rows.gross, gappy.gross, rtol=0, atol=1e-12)
    assert off.mean() < 0.05
    in_memory = from_result(gappy).rows  # a result in memory carries the engine's series
    np.testing.assert_array_equal(in_memory.gross, gappy.gross)
    np.testing.assert_array_equal(in_memory.turnover, gappy.turnover)


def test_drawdown_bottoms_at_the_metrics_max_drawdown(result):
    rows = from_result(result).rows
    assert -drawdown(rows.curve).min() == pytest.approx(result.metrics["max_drawdown"],
                                                       rel=1e-12)


def test_drawdown_equals_quantstats_when_the_first_bar_gains():
    # quantstats measures from the first bar's equity, qmtl from the starting 1.0: the two
    # agree when the first bar does not lose
    r = np.random.default_rng(3).normal(0.0003, 0.01, 600)
    r[0] = 0.01
    ts = pd.date_range("2020-01-01", periods=600, freq="D", tz="UTC")
    want = qs.stats.to_drawdown_series(pd.Series(r, index=ts)).to_numpy()
    np.testing.assert_allclose(drawdown(np.cumprod(1 + r)), want, rtol=0, atol=1e-12)


def test_monthly_and_yearly_returns_equal_quantstats(result):
    rows = from_result(result).rows
    r = series(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = qs.stats.monthly_returns(r, eoy=True, compounded=True)
    years, grid = monthly_table(rows.timeline, rows.curve)
    assert years == [int(y) for y in want.index]
    got = np.nan_to_num(grid)  # quantstats shows a month without bars as 0
    np.testing.assert_allclose(got, want.iloc[:, :12].to_numpy(dtype=float), atol=1e-12)
    _, yearly = period_returns(rows.timeline, rows.curve, "Y")
    np.testing.assert_allclose(yearly, want["EOY"].to_numpy(dtype=float), atol=1e-12)


def test_monthly_returns_by_hand():
    ts = np.array(["2024-01-02", "2024-01-31", "2024-03-01", "2025-01-05"],
                  "datetime64[ns]").astype(np.int64)
    equity = np.array([0.9, 1.2, 0.6, 0.9])
    years, grid = monthly_table(ts, equity)
    assert years == [2024, 2025]
    assert grid[0, 0] == pytest.approx(0.2)  # 1.2 / 1.0 - 1
    assert math.isnan(grid[0, 1])  # February: no bars
    assert grid[0, 2] == pytest.approx(-0.5)  # 0.6 / 1.2 - 1
    assert grid[1, 0] == pytest.approx(0.5)
    labels, yearly = period_returns(ts, equity, "Y")
    assert [str(y) for y in labels] == ["2024", "2025"]
    np.testing.assert_allclose(yearly, [-0.4, 0.5])
    months, sums = period_sums(ts, np.array([1.0, 2.0, 3.0, 4.0]), "M")
    assert [str(m) for m in months] == ["2024-01", "2024-03", "2025-01"]
    assert sums.tolist() == [3.0, 3.0, 4.0]


@pytest.mark.parametrize("window", [2, 20, 126])
def test_rolling_sharpe_and_volatility_equal_quantstats(result, window):
    rows = from_result(result).rows
    r = series(rows)
    sharpe, vol = rolling_sharpe_vol(rows.returns, window, 252.0)
    want_sharpe = qs.stats.rolling_sharpe(r, rolling_period=window, periods_per_year=252)
    want_vol = qs.stats.rolling_volatility(r, rolling_period=window, periods_per_year=252)
    # a window with no movement at all (flat, out of the market) has no Sharpe: NaN here,
    # a gap in the chart; quantstats' releases differ on it (NaN, or 0 since late 2026)
    flat = np.zeros(len(vol), dtype=bool)
    flat[window - 1:] = vol[window - 1:] == 0
    assert np.isnan(sharpe[flat]).all()
    ok = np.isfinite(want_sharpe.to_numpy()) & ~flat
    assert ok.sum() > len(ok) // 2
    assert np.isnan(sharpe[: window - 1]).all()
    np.testing.assert_allclose(sharpe[ok], want_sharpe.to_numpy()[ok], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(vol[window - 1:], want_vol.to_numpy()[window - 1:], rtol=1e-8,
                               atol=1e-8)  # pandas leaves ~1e-9 of rounding in a flat window


def test_rolling_moments_stay_exact_over_a_long_series():
    # a million returns around a large mean: centred sums keep the rolling std exact
    r = 0.5 + np.random.default_rng(5).normal(0, 1e-4, 1_000_000)
    _, vol = rolling_sharpe_vol(r, 1000, 1.0)
    want = pd.Series(r).rolling(1000).std().to_numpy()
    np.testing.assert_allclose(vol[999:], want[999:], rtol=1e-6)


def test_contributions_add_up_to_the_total_return(result, gappy):
    for res in (result, gappy):
        contrib = from_result(res).rows.contributions()
        assert sorted(contrib) == ["AAA", "BBB"]
        assert sum(contrib.values()) == pytest.approx(res.metrics["total_return"], abs=1e-12)
        assert all(v != 0 for v in contrib.values())


def test_contribution_of_each_symbol_by_hand():
    # one symbol alone: its contribution is the whole P&L, the other's is zero
    from qmtl.report.stats import Rows

    rows = Rows(np.array([1, 1, 2, 2, 3, 3]), np.array([0, 1] * 3), ["A", "B"],
                weight=np.array([1.0, 0.0, 1.0, 0.0, 1.0, 0.0]),
                contrib=np.array([0.0, 0.0, 0.1, 0.0, 0.1, 0.0]),
                equity=np.array([1.0, 1.0, 1.1, 1.1, 1.21, 1.21]))
    got = rows.contributions()
    assert got["A"] == pytest.approx(0.21) and got["B"] == 0.0


def test_benchmark_is_buy_and_hold_in_equal_parts(gappy):
    run = from_result(gappy)
    rows = run.rows
    frame = pd.DataFrame({"ts": rows.ts, "sym": np.array(rows.symbols)[rows.code],
                          "close": rows.close}).pivot(index="ts", columns="sym",
                                                      values="close").ffill()
    want = (frame / frame.iloc[0]).mean(axis=1).to_numpy()
    np.testing.assert_allclose(rows.benchmark(), want, rtol=1e-12)
    only = (frame["BBB"] / frame["BBB"].iloc[0]).to_numpy()
    np.testing.assert_allclose(rows.benchmark("BBB"), only, rtol=1e-12)


def test_closes_in_the_run_are_the_bars_closes(gappy):
    from tests.qmtl.report.conftest import bars

    rows = from_result(gappy).rows
    aaa = rows.close[rows.code == rows.symbols.index("AAA")]
    np.testing.assert_array_equal(aaa, bars(500)["AAA"]["close"])


def test_closes_after_a_look_back_are_the_bars_closes():
    from qmtl import backtest
    from tests.qmtl.report.conftest import Cross, bars

    data = bars(300)
    start = int(data["AAA"]["ts"][100])
    res = backtest(Cross, data=data, start=start)  # bars before start only warm up
    rows = from_result(res).rows
    assert rows.timeline[0] == start
    for i, symbol in enumerate(rows.symbols):
        np.testing.assert_array_equal(rows.close[rows.code == i], data[symbol]["close"][100:])
