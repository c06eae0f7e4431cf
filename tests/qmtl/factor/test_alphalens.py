"""``qmtl.factor``'s numbers equal alphalens-reloaded's on the same factor and prices, to
1e-9, wherever both define the statistic (the module docstring of :mod:`qmtl.factor.stats`
says where they differ: alphalens halves the spread; it has no Pearson IC)."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import qmtl
from connectors.data.synthetic import generate_bars

al = pytest.importorskip("alphalens")

SYMBOLS = [f"S{i:02d}" for i in range(16)]
GROUPS = {s: ("even" if i % 2 == 0 else "odd") for i, s in enumerate(SYMBOLS)}
TEXT = "rank(-ts_delta(close, 3)) + 0.3 * zscore(ts_mean(returns, 5))"


@pytest.fixture(scope="module")
def case():
    data = {s: generate_bars(260, seed=40 + i) for i, s in enumerate(SYMBOLS)}
    rep = qmtl.factor(TEXT, data, symbols=SYMBOLS, groups=GROUPS)
    ts = data[SYMBOLS[0]]["ts"]
    idx = pd.to_datetime(ts, utc=True)
    prices = pd.DataFrame({s: data[s]["close"] for s in SYMBOLS}, index=idx)
    value = qmtl.factors([TEXT], data, symbols=SYMBOLS)[0][0]  # the same, twice: no state
    from qmtl.alpha.functions import to_expr
    from qmtl.alpha.syntax import parse
    from qmtl.factor.values import evaluate

    raw = evaluate({"a": to_expr(parse(TEXT), TEXT)}, data, SYMBOLS).panels["a"]
    factor = pd.DataFrame(raw, index=idx, columns=SYMBOLS).stack()
    factor.index.names = ["date", "asset"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fd = al.utils.get_clean_factor_and_forward_returns(
            factor, prices, periods=(1, 5, 10), quantiles=5, filter_zscore=None,
            max_loss=1.0, groupby=GROUPS)
    assert value.stats.observations == rep.stats.observations
    return rep, fd


def close(got: np.ndarray, want: np.ndarray) -> None:
    assert len(got) == len(want)
    assert np.array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got[np.isfinite(got)], want[np.isfinite(want)], rtol=1e-9,
                               atol=1e-9)


def test_the_observations_are_alphalens_clean_factor_data(case) -> None:
    rep, fd = case
    assert rep.stats.observations == len(fd)
    assert len(rep.stats.ts) == fd.index.get_level_values("date").nunique()


@pytest.mark.parametrize("h", [1, 5, 10])
def test_rank_ic_per_bar_and_its_summary(case, h: int) -> None:
    rep, fd = case
    ic = al.performance.factor_information_coefficient(fd)[f"{h}D"]
    close(rep.stats.horizons[h].rank_ic, ic.to_numpy())
    s = rep.stats.horizons[h].rank_ic_summary
    assert s.mean == pytest.approx(ic.mean(), abs=1e-12)
    assert s.std == pytest.approx(ic.std(), abs=1e-12)
    from scipy import stats

    assert s.t_stat == pytest.approx(stats.ttest_1samp(ic, 0).statistic, rel=1e-9)


@pytest.mark.parametrize("h", [1, 5, 10])
def test_quantile_means_and_the_spread(case, h: int) -> None:
    rep, fd = case
    pooled, _ = al.performance.mean_return_by_quantile(fd, demeaned=False)
    close(np.array(rep.stats.horizons[h].quantile_mean), pooled[f"{h}D"].to_numpy())
    by_date, _ = al.performance.mean_return_by_quantile(fd, by_date=True, demeaned=False)
    spread, _ = al.performance.compute_mean_returns_spread(by_date, 5, 1)
    close(rep.stats.horizons[h].spread, 2.0 * spread[f"{h}D"].to_numpy())  # alphalens: / 2
    if h == 1:
        cum = al.performance.cumulative_returns(2.0 * spread["1D"]) - 1.0
        close(rep.stats.horizons[1].cumulative_spread, cum.to_numpy())


def test_turnover_and_rank_autocorrelation(case) -> None:
    rep, fd = case
    for q in (1, 5):
        want = al.performance.quantile_turnover(fd["factor_quantile"], q, 1)
        close(rep.stats.turnover[q], want.to_numpy())
    auto = al.performance.factor_rank_autocorrelation(fd, 1)
    close(rep.stats.rank_autocorr, auto.to_numpy())


def test_ic_by_group_and_by_month(case) -> None:
    rep, fd = case
    by_group = al.performance.mean_information_coefficient(fd, by_group=True)
    for g, v in rep.stats.horizons[5].group_ic.items():
        assert v == pytest.approx(by_group.loc[g, "5D"], abs=1e-9)
    monthly = al.performance.mean_information_coefficient(fd, by_time="ME")["1D"]
    got = np.array(list(rep.monthly_ic.values()))
    close(got, monthly.to_numpy())


def test_pearson_ic_is_the_correlation_of_values(case) -> None:
    rep, fd = case
    want = fd.groupby(level="date").apply(lambda d: d["factor"].corr(d["1D"]))
    close(rep.stats.horizons[1].ic, want.to_numpy())
