"""Market hours (issue 27 §4): intraday bars are annualized on the bars their market's
calendar expects (1h EURUSD on the FX 24x5 week, 1h US equities on NYSE sessions), against
numbers worked out by hand from the calendars' rules; ``--periods-per-year`` still wins."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from connectors.data.synthetic import generate_bars
from qmtl import Strategy, backtest

HOUR = 3_600 * 10**9


class Hourly(Strategy):
    symbols = ["X"]
    interval = "1h"

    def signal(self, bars):
        return bars.close > bars.close.sma(5)


def on(ts: np.ndarray, calendar: str | None):
    """The strategy on ``calendar`` and bars at ``ts``."""
    strategy = type("OnCalendar", (Hourly,), {"calendar": calendar})
    return strategy, {"X": {**generate_bars(len(ts), seed=5), "ts": ts}}


def utc_ns(local: pd.DatetimeIndex) -> np.ndarray:
    return local.tz_convert("UTC").tz_localize(None).to_numpy("datetime64[ns]").astype(np.int64)


def fx_week_bars() -> np.ndarray:
    """52 FX weeks of 1h bars, stamped at their end: each week runs from Sunday 17:00 to
    Friday 17:00 New York time, 120 hours (a DST change, at 02:00 on a Sunday, falls
    outside the week), from the week of Sunday 2024-01-07."""
    out = []
    for w in range(52):
        sunday = pd.Timestamp("2024-01-07 17:00", tz="America/New_York") + pd.Timedelta(weeks=w)
        local = pd.DatetimeIndex([sunday + pd.Timedelta(hours=h) for h in range(1, 121)])
        out.append(utc_ns(local))
    return np.concatenate(out)


def test_1h_eurusd_is_annualized_on_the_fx_week():
    ts = fx_week_bars()
    assert len(ts) == 52 * 120
    # hand: the first bar Sunday 2024-01-07 18:00 EST, the last Friday 2025-01-03 17:00 EST:
    # 51 weeks and 5 days less an hour = 51 * 168 + 119 = 8,687 hours; 6,240 bars expected
    years = 8_687 / 8_760
    assert (ts[-1] - ts[0]) / HOUR == 8_687
    ppy = 6_239 / years  # (expected - 1) / years = 6,291.43
    holed = np.delete(ts, np.arange(1_000, 1_400))  # data missing: the calendar still expects it
    strategy, data = on(holed, "fx")
    res = backtest(strategy, data)
    a = res.settings["annualization"]
    assert a["source"] == "calendar" and a["detail"].startswith("fx: 6240 bars expected")
    assert res.settings["periods_per_year"] == pytest.approx(ppy, rel=1e-12)
    assert round(ppy, 2) == 6_291.43  # not the 8,760 of every hour of the year
    r = res.returns
    assert res.metrics["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(ppy))
    # the bars' own spacing, without a calendar, counts the missing bars out
    spaced = backtest(*on(holed, None))
    assert spaced.settings["periods_per_year"] == pytest.approx((len(holed) - 1) / years)
    # and the override still wins
    fixed = backtest(strategy, data, periods_per_year=8_760)
    assert fixed.settings["annualization"]["source"] == "override"
    assert fixed.metrics["sharpe"] == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(8_760))


# NYSE 2024, by hand: 10 full holidays; 3 early closes at 13:00 (the day before Independence
# Day, the day after Thanksgiving, Christmas Eve)
NYSE_HOLIDAYS_2024 = [
    "2024-01-01",
    "2024-01-15",
    "2024-02-19",
    "2024-03-29",
    "2024-05-27",
    "2024-06-19",
    "2024-07-04",
    "2024-09-02",
    "2024-11-28",
    "2024-12-25",
]
NYSE_EARLY_2024 = ["2024-07-03", "2024-11-29", "2024-12-24"]


def nyse_hour_bars() -> np.ndarray:
    """1h bars of NYSE 2024 stamped at open + k hours up to the close: 10:30 ... 15:30 New
    York time (6 a day), 10:30, 11:30, 12:30 on an early close."""
    days = pd.bdate_range("2024-01-01", "2024-12-31")
    days = days[~days.isin(pd.DatetimeIndex(NYSE_HOLIDAYS_2024))]
    out = []
    for d in days:
        n = 3 if str(d.date()) in NYSE_EARLY_2024 else 6
        open_ = pd.Timestamp(f"{d.date()} 09:30", tz="America/New_York")
        out.append(
            utc_ns(pd.DatetimeIndex([open_ + pd.Timedelta(hours=k) for k in range(1, n + 1)]))
        )
    return np.concatenate(out)


def test_1h_us_equities_are_annualized_on_nyse_sessions():
    ts = nyse_hour_bars()
    assert len(ts) == 249 * 6 + 3 * 3 == 1_503  # 252 sessions
    # hand: 2024-01-02 10:30 EST (15:30 UTC) to 2024-12-31 15:30 EST (20:30 UTC): 364 days
    # and 5 hours = 8,741 hours
    assert (ts[-1] - ts[0]) / HOUR == 8_741
    ppy = 1_502 / (8_741 / 8_760)  # 1,505.26 bars a year, not 8,760
    strategy, data = on(np.delete(ts, np.arange(200, 260)), "XNYS")
    res = backtest(strategy, data)
    assert res.settings["annualization"]["source"] == "calendar"
    assert res.settings["periods_per_year"] == pytest.approx(ppy, rel=1e-12)
    assert round(ppy, 2) == 1_505.26
    # every hour of the year would overstate Sharpe and volatility by sqrt(8760 / 1505)
    assert math.sqrt(8_760 / ppy) == pytest.approx(2.41, abs=0.01)
    r = res.returns
    assert res.metrics["volatility"] == pytest.approx(r.std(ddof=1) * math.sqrt(ppy))


def test_the_calendar_option_names_the_market_and_is_checked(tmp_path):
    from typer.testing import CliRunner

    from connectors.data.catalog import Catalog
    from qmtl.cli import app

    Catalog(tmp_path / "data").write("X", "1h", on(nyse_hour_bars(), None)[1]["X"])
    code = tmp_path / "s.py"
    code.write_text(
        "from qmtl import Strategy\n\n\nclass S(Strategy):\n    symbols = ['X']\n"
        "    interval = '1h'\n\n    def signal(self, bars):\n        return 1.0\n"
    )
    cli = CliRunner()
    out = tmp_path / "run"
    ok = cli.invoke(
        app,
        [
            "run",
            str(code),
            "--data",
            str(tmp_path / "data"),
            "--calendar",
            "NYSE",
            "--out",
            str(out),
        ],
    )
    assert ok.exit_code == 0, ok.output
    import json

    doc = json.loads((out / "metrics.json").read_text())
    assert doc["settings"]["annualization"]["source"] == "calendar"
    assert doc["settings"]["periods_per_year"] == pytest.approx(1_502 / (8_741 / 8_760))
    bad = cli.invoke(
        app, ["run", str(code), "--data", str(tmp_path / "data"), "--calendar", "lunar"]
    )
    assert bad.exit_code != 0 and "unknown calendar 'lunar'" in bad.output
