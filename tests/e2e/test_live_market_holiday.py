"""A live start across a market holiday (issue 27): GOOG's history ends Friday 2011-12-30,
Monday 2 January 2012 was an NYSE holiday, and a live run from ``--start 2012-01-01`` on
the XNYS calendar starts on Tuesday's bar without a gap error and without --max-gap-bars,
and gives the backtest's returns from the same start."""

from __future__ import annotations

import numpy as np
import pandas as pd

from connectors.data.synthetic import generate_bars
from qmtl import Strategy
from qmtl.core.times import parse_time
from qmtl.live import LiveOptions, run_live
from qmtl.runner import backtest
from tests.e2e.live_helpers import (
    activate,
    max_abs_diff,
    publish,
    topic_name,
    world_server,
    write_catalog,
)


class Ema(Strategy):
    symbols = ["GOOG"]
    calendar = "XNYS"

    def signal(self, bars):
        return bars.close.ema(5) > bars.close.ema(15)


def nyse_days(first: str, last: str) -> np.ndarray:
    import exchange_calendars as xcals

    days = xcals.get_calendar("XNYS", start=first, end=last).sessions
    return pd.DatetimeIndex(days).to_numpy("datetime64[ns]").astype(np.int64)


def test_a_live_start_across_an_nyse_holiday_has_no_gap(kafka, tmp_path):
    ts = nyse_days("2011-09-01", "2012-02-29")
    data = {"GOOG": {**generate_bars(len(ts), seed=4), "ts": ts}}
    write_catalog(tmp_path / "catalog", data)
    start = parse_time("2012-01-01")
    after = {"GOOG": {k: v[ts >= start] for k, v in data["GOOG"].items()}}
    assert int(after["GOOG"]["ts"][0]) == parse_time("2012-01-03")  # the 2nd: a holiday
    topic = topic_name()
    total = publish(kafka.brokers, topic, after)
    bt = backtest(Ema, data=tmp_path / "catalog", start=start)
    with world_server(tmp_path) as url:
        activate(url, "w", "Ema")
        res = run_live(
            Ema,
            LiveOptions(
                brokers=kafka.brokers,
                topic=topic,
                world="w",
                url=url,
                paper=True,
                data=tmp_path / "catalog",
                start="2012-01-01",
                max_bars=total,
                orders_store=str(tmp_path / "orders.db"),
            ),
        )
    assert res.stats.gap_filled == 0 and res.stats.live_bars == total
    assert np.array_equal(res.ts, bt.ts)
    assert max_abs_diff(res.returns, bt.returns) <= 1e-12
