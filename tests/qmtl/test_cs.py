"""The user's side of cross-sections, other symbols and long/short: the `cs` namespace, the
Strategy attributes `context` and `max_net`, and clear errors for bad input."""

from __future__ import annotations

import math

import pytest

import qmtl
from qmtl import Strategy, cs
from qmtl.core.expr import col
from qmtl.strategy import Bars, StrategyError


def test_cs_is_exported_with_the_functions_other_code_builds_on():
    assert qmtl.cs is cs and "cs" in qmtl.__all__
    for name in ("rank", "zscore", "demean", "scale", "neutralize", "top", "bottom",
                 "groups_from_csv"):
        assert callable(getattr(cs, name)), name


def test_cs_nodes_have_content_ids():
    x = col("close").pct_change(5)
    assert cs.rank(x).id == cs.rank(col("close").pct_change(5)).id
    assert cs.rank(x).id != cs.zscore(x).id
    assert cs.scale(x, 1.0).id != cs.scale(x, 2.0).id
    assert cs.top(x, 3).id != cs.bottom(x, 3).id != cs.top(x, 4).id
    assert cs.neutralize(x, {"A": "t"}).id != cs.neutralize(x, {"A": "u"}).id
    assert cs.rank(x).ema(5).lookback == x.lookback + 4  # time series on a cross-section


@pytest.mark.parametrize("call, message", [
    (lambda: cs.scale(col("close"), gross=-1), "gross must be a positive number"),
    (lambda: cs.top(col("close"), 0), "cs.top: k must be a positive integer"),
    (lambda: cs.bottom(col("close"), 1.5), "cs.bottom: k must be a positive integer"),
    (lambda: cs.neutralize(col("close"), {}), "groups must be a non-empty mapping"),
    (lambda: cs.rank("close"), "expected an expression or a number"),
])
def test_bad_arguments_say_what_is_wrong(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call()


def test_groups_from_csv_names_the_bad_line(tmp_path):
    good = tmp_path / "g.csv"
    good.write_text("symbol,sector\nA, tech \n\nB,energy\n")
    assert cs.groups_from_csv(good) == {"A": "tech", "B": "energy"}
    bad = tmp_path / "bad.csv"
    bad.write_text("symbol,sector\nA,tech\nB\n")
    with pytest.raises(ValueError, match=r"bad.csv:3: expected symbol,group"):
        cs.groups_from_csv(bad)
    twice = tmp_path / "twice.csv"
    twice.write_text("symbol,sector\nA,tech\nA,energy\n")
    with pytest.raises(ValueError, match=r"twice.csv:3: symbol 'A' listed twice"):
        cs.groups_from_csv(twice)


def test_bars_of_other_symbols_and_intervals():
    b = Bars()
    assert b["SPY"].close.params == {"name": "close", "symbol": "SPY"}
    assert b.at("1h").close.params == {"interval": "1h", "name": "close"}
    assert b["SPY"].at("1d").high.id == b.at("1d")["SPY"].high.id
    assert b["SPY"].close.id != b.close.id
    with pytest.raises(StrategyError, match=r"bars\.is_symbol needs a symbol name"):
        b.is_symbol("")


def test_context_and_max_net_are_attributes_not_parameters():
    class LS(Strategy):
        symbols = ["A", "B"]
        context = ["SPY"]
        max_net = 0.2
        n: int = 3

    assert LS.parameters() == {"n": 3}
    assert LS().max_net == 0.2 and LS(max_net=0.5).max_net == 0.5
    assert Strategy.max_net == math.inf
    with pytest.raises(StrategyError, match="max_net must be >= 0"):
        LS(max_net=-1)

    class BadContext(Strategy):
        context = "SPY"

    with pytest.raises(StrategyError, match="context must be a list of symbol names"):
        BadContext()


def test_max_net_reaches_the_run_and_its_settings():
    import numpy as np

    from connectors.data.synthetic import generate_bars

    class Tilted(Strategy):
        symbols = ["A", "B", "C"]
        max_gross = 3.0
        max_net = 0.25

        def signal(self, bars):
            return cs.rank(bars.close.pct_change(2)) - 0.2  # mostly long: net above 0.25

    data = {s: generate_bars(60, seed=i) for i, s in enumerate(Tilted.symbols)}
    res = qmtl.backtest(Tilted, data)
    w = res.bars.to_pandas().pivot(index="ts", columns="symbol", values="weight")
    assert np.abs(w.sum(axis=1)).max() <= 0.25 + 1e-12
    assert (np.abs(w.sum(axis=1)) > 0.25 - 1e-12).sum() > 10  # the cap was hit, not idle
    assert res.settings["max_net"] == 0.25
    free = qmtl.backtest(Tilted, data, max_net=math.inf)
    assert free.settings["max_net"] is None
