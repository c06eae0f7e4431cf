"""The inferred warm-up of ``bars.at(...)`` counts a coarse bar as the strategy's bars that fit
in it by length (1,440 minutes a day): on a market with trading hours it reads more than it
needs, never less — a backtest from any start equals the same bars of a run over everything —
and a ``warmup`` of the sessions actually needed does too."""

from __future__ import annotations

import numpy as np
import pytest

from connectors.data.synthetic import generate_bars
from dataflows.panel import lookback_bars
from qmtl import Strategy, backtest, where
from qmtl.runner import make_strategy, to_spec
from tests.e2e.test_live_at import session_minutes

SESSION = 390  # minute bars a day


class Filter(Strategy):
    symbols = ["AAA", "BBB"]
    interval = "1m"
    days: int = 3

    def signal(self, bars):
        daily = bars.at("1d").close
        hourly = bars.at("1h").close
        return where(daily > daily.sma(self.days), hourly > hourly.sma(4), 0.0)


class Sessions(Filter):
    warmup = 3 * SESSION


def session_data(days: int, seed: int) -> dict:
    ts = session_minutes(days)
    return {s: {**generate_bars(len(ts), interval="1m", seed=seed + i, vol=0.6), "ts": ts}
            for i, s in enumerate(Filter.symbols)}


def weights(res) -> np.ndarray:
    return res.bars.to_pandas().pivot(index="ts", columns="symbol", values="weight")


def test_a_day_counts_as_1440_minutes():
    spec = to_spec(make_strategy(Filter, {}), list(Filter.symbols), None)
    assert lookback_bars(spec.weight, "1m") == (1 + 2) * 1440  # the day itself, then sma(3)
    spec = to_spec(make_strategy(Filter, {"days": 5}), list(Filter.symbols), None)
    assert lookback_bars(spec.weight, "1m") == (1 + 4) * 1440


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("day", [5, 9, 12, 13])  # 2024-03-11 (day 5) is a Monday
def test_the_inferred_and_the_session_warmup_both_warm_the_run_up(seed, day):
    data = session_data(16, seed)
    everything = weights(backtest(Filter, data))
    start = int(data["AAA"]["ts"][day * SESSION])
    for strategy, warmup in ((Filter, 3 * 1440), (Sessions, 3 * SESSION)):
        res = backtest(strategy, data, start=start)
        assert res.data["lookback"]["bars"] == res.settings["warmup"] == warmup
        read = min(warmup, day * SESSION)  # all the history there is, at most
        assert res.data["lookback"]["from"] == int(data["AAA"]["ts"][day * SESSION - read])
        got = weights(res)
        assert got.index[0] == start
        np.testing.assert_array_equal(got.to_numpy(), everything.loc[got.index].to_numpy())
    assert everything.loc[start:].to_numpy().sum() > 0  # something traded after the start


def test_two_sessions_are_too_short():
    data = session_data(16, 2)
    everything = weights(backtest(Filter, data))
    start = int(data["AAA"]["ts"][12 * SESSION])

    class Short(Filter):
        warmup = 2 * SESSION

    got = weights(backtest(Short, data, start=start))
    assert (got.iloc[:SESSION].to_numpy() == 0).all()  # no 3-day average yet: flat first day
    assert (everything.loc[got.index].iloc[:SESSION].to_numpy() != 0).any()
