"""A backtest from --start warms its indicators up on the bars before it (the look-back the
graph declares) and starts its portfolio flat at --start."""

from __future__ import annotations

import numpy as np

from connectors.data.synthetic import generate_bars
from qmtl import Strategy, backtest

DATA = {"A": generate_bars(400, seed=5), "B": generate_bars(400, seed=6)}
TS = DATA["A"]["ts"]


class Cross(Strategy):
    symbols = ["A", "B"]

    def signal(self, bars):
        return bars.close.sma(10) > bars.close.sma(50)


def weights(result):
    t = result.bars
    return {(ts, s): w for ts, s, w in zip(t.column("ts").to_pylist(),
                                           t.column("symbol").to_pylist(),
                                           t.column("weight").to_pylist(), strict=True)}


def test_signals_are_warm_at_start_and_the_portfolio_starts_flat():
    full = backtest(Cross, data=DATA)
    late = backtest(Cross, data=DATA, start=int(TS[200]))
    assert late.ts[0] == TS[200] and len(late.returns) == 200
    w_full, w_late = weights(full), weights(late)
    assert {k: w_full[k] for k in w_late} == w_late  # the same decisions from the first bar
    assert any(w_late.values())  # and they are not all flat (the look-back made them)
    assert late.returns[0] == 0.0  # nothing held into the first bar
    np.testing.assert_array_equal(late.returns[1:], full.returns[201:])
    assert late.data["lookback"] == {"bars": 49, "from": int(TS[151])}
    assert late.data["symbols"]["A"]["first"] == int(TS[151])  # the fingerprint saw them


def test_warmup_zero_means_cold_at_start():
    class Cold(Cross):
        warmup = 0

    late = backtest(Cold, data=DATA, start=int(TS[200]))
    assert late.data["lookback"] is None
    assert not any(list(weights(late).values())[: 2 * 49])  # NaN warm-up: flat
