"""BacktestResult: the pandas view (and what to install without pandas), and the settings
and readable times recorded in metrics.json."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from connectors.data.synthetic import generate_bars
from qmtl import Strategy, backtest
from qmtl.result import MissingExtraError

DATA = {"A": generate_bars(400, seed=7), "B": generate_bars(400, seed=8)}


class Pair(Strategy):
    symbols = ["A", "B"]
    n: int = 20

    def signal(self, bars):
        return (bars.close > bars.close.sma(self.n)) * 0.5


def test_to_pandas_without_pandas_names_the_extra(monkeypatch):
    res = backtest(Pair, data=DATA)
    monkeypatch.setitem(sys.modules, "pandas", None)  # what Python does when it is absent
    with pytest.raises(MissingExtraError, match=r"pip install 'qmtl\[pandas\]'") as info:
        res.to_pandas()
    assert isinstance(info.value, ImportError)


def test_to_pandas_holds_the_series():
    pd = pytest.importorskip("pandas")
    res = backtest(Pair, data=DATA)
    frame = res.to_pandas()
    assert list(frame.columns) == ["return", "equity", "turnover", "gross"]
    assert frame.index[0] == pd.Timestamp(int(res.ts[0]), unit="ns", tz="UTC")
    np.testing.assert_array_equal(frame["equity"].to_numpy(), res.equity)


def test_settings_are_every_argument_of_the_run(tmp_path):
    res = backtest(Pair, data=DATA, cost_bps=3.5, start="2015-06-01", batch_size=[7, 50],
                   workers=2, periods_per_year=365, on_bad_bars="drop", metrics_every=100,
                   n=10)
    assert res.params == {"n": 10}
    assert res.settings == {
        "cost_bps": 3.5,
        "max_gross": 1.0,
        "max_net": None,
        "context": [],
        "periods_per_year": 365.0,
        "annualization": {"periods_per_year": 365.0, "source": "override",
                          "detail": "--periods-per-year"},
        "execution": {"rule": "close", "spread_bps": 0.0, "slippage_vol": 0.0, "vol_window": 20,
                      "no_trade_band": 0.0, "min_order_notional": 0.0, "lot_size": 0.0,
                      "capital": 1_000_000.0},
        "start": int(np.datetime64("2015-06-01", "ns").astype(np.int64)),
        "end": None,
        "warmup": 9,  # the graph's look-back: sma(10) needs 9 earlier bars
        "batch_size": [7, 50],
        "workers": 2,
        "on_bad_bars": "drop",
        "metrics_every": 100,
    }
    doc = json.loads((res.write(tmp_path) / "metrics.json").read_text())
    assert doc["settings"]["start_utc"] == "2015-06-01T00:00:00Z"
    assert "end_utc" not in doc["settings"]  # no time, no twin
    assert doc["data"]["requested"]["start_utc"] == "2015-06-01T00:00:00Z"
    assert doc["data"]["lookback"]["from_utc"] < "2015-06-01"
    assert not list(tmp_path.glob(".*.tmp"))
