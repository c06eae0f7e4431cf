"""Annualization from the data (qmtl.core.intervals.annualization): the demo catalog's daily
bars run every day of the week, so a year is 365 of them, not 252; a calendar, where the
strategy names one, says how many bars a year the market has; --periods-per-year wins."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from connectors.data.catalog import Catalog
from connectors.data.synthetic import generate_bars, write_demo
from qmtl import Strategy, backtest
from qmtl.core.intervals import annualization
from qmtl.sources import BacktestError

DAY = 86_400 * 10**9


class Long(Strategy):
    symbols = ["AAPL"]

    def signal(self, bars):
        return bars.close > bars.close.sma(20)


def test_the_demo_catalog_is_annualized_on_its_own_spacing(tmp_path):
    catalog = Catalog(tmp_path / "data")
    write_demo(catalog, ["AAPL"])
    res = backtest(Long, catalog)
    ts = catalog.read("AAPL", "1d")["ts"]
    span_years = (ts[-1] - ts[0]) / DAY / 365
    assert len(ts) == 2520 and round(span_years, 2) == 6.90  # not the 10 years 252 implies
    ppy = 2519 / span_years  # hand: (bars - 1) / years
    assert res.settings["periods_per_year"] == pytest.approx(ppy, rel=1e-12)
    assert ppy == pytest.approx(365.0, rel=1e-12)
    assert res.settings["annualization"] == {
        "periods_per_year": res.settings["periods_per_year"],
        "source": "bars",
        "detail": "2520 bars over 6.90 years",
    }
    r = res.returns
    assert res.metrics["sharpe"] == pytest.approx(
        r.mean() / r.std(ddof=1) * math.sqrt(ppy), rel=1e-9
    )
    assert res.metrics["cagr"] == pytest.approx(np.prod(1 + r) ** (ppy / len(r)) - 1, rel=1e-9)
    doc = json.loads((res.write(tmp_path / "run") / "metrics.json").read_text())
    assert doc["settings"]["annualization"]["source"] == "bars"
    # the override still wins, and says so
    fixed = backtest(Long, catalog, periods_per_year=252)
    assert fixed.settings["annualization"]["source"] == "override"
    assert fixed.metrics["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252))


def weekdays(n: int) -> dict[str, np.ndarray]:
    days = np.busday_offset("2024-01-01", np.arange(n)).astype("datetime64[ns]").astype(np.int64)
    return {**generate_bars(n, seed=3), "ts": days}


def test_a_calendar_set_on_the_strategy_counts_the_bars_it_expects():
    class OnWeekdays(Long):
        calendar = "weekdays"

    bars = weekdays(300)
    # drop 10 bars: the calendar still expects them, the spacing would not
    data = {"AAPL": {k: np.delete(v, np.arange(100, 110)) for k, v in bars.items()}}
    res = backtest(OnWeekdays, data)
    years = (bars["ts"][-1] - bars["ts"][0]) / DAY / 365
    assert res.settings["annualization"]["source"] == "calendar"
    assert res.settings["periods_per_year"] == pytest.approx(299 / years, rel=1e-12)
    assert 299 / years == pytest.approx(365 * 5 / 7, rel=0.01)
    spaced = backtest(Long, data)
    assert spaced.settings["periods_per_year"] == pytest.approx(289 / years, rel=1e-12)
    with pytest.raises(BacktestError, match=r"Lunar\.calendar: unknown calendar .lunar."):
        backtest(type("Lunar", (Long,), {"calendar": "lunar"}), data)


def test_symbols_on_different_days_annualize_on_their_timeline():
    a = generate_bars(40, seed=1)
    b = {**generate_bars(20, seed=2), "ts": a["ts"][::2] + DAY // 2}  # between a's bars

    class Two(Strategy):
        symbols = ["A", "B"]

        def signal(self, bars):
            return 0.5

    res = backtest(Two, {"A": a, "B": b})
    times = np.union1d(a["ts"], b["ts"])
    ppy = (len(times) - 1) / ((times[-1] - times[0]) / DAY / 365)
    assert res.settings["periods_per_year"] == pytest.approx(ppy, rel=1e-12)


def test_too_few_bars_fall_back_to_the_interval_and_bad_overrides_are_refused():
    assert annualization("1d", np.array([5])).periods_per_year == 252.0
    assert annualization("1d", np.array([5, 5])).source == "interval"
    with pytest.raises(ValueError, match="periods per year must be a finite number > 0"):
        annualization("1d", override=0)
    with pytest.raises(BacktestError, match="periods_per_year must be a finite number > 0"):
        backtest(Long, {"AAPL": generate_bars(30)}, periods_per_year=-1)
