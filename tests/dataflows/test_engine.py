"""The compiled engine end to end: invariants (batch invariance, no look-ahead, determinism),
indicator values against TA-Lib, user operators, and bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import talib
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.data.synthetic import generate_bars
from dataflows.graph import Program, ProgramState
from qmtl import Operator, Strategy, backtest, check_batch_invariance, latch, where
from qmtl.core.bars import BadBarsError
from qmtl.core.expr import col
from qmtl.runner import BacktestError


class Latch(Operator):
    """User-style operator: 1 after `enter` fires, until `leave` fires."""

    def __init__(self, start: float = 0.0):
        self.state = start

    def update(self, enter, leave):
        out = np.empty_like(enter)
        for i in range(len(enter)):
            if enter[i] > 0:
                self.state = 1.0
            elif leave[i] > 0:
                self.state = 0.0
            out[i] = self.state
        return out


class Kitchen(Strategy):
    """Touches most operator kinds so invariance tests cover them."""

    symbols = ["A", "B"]
    cost_bps = 2.0
    max_gross = 1.5

    def signal(self, bars):
        c = bars.close
        trend = (c.sma(5) > c.ema(12)).fillna(0)
        rsi = c.rsi(7)
        hold = Latch()(rsi < 40, rsi > 60)
        z = c.zscore(10).clip(-2, 2)
        slope = c.rolling(6).apply(lambda w: (w[-1] - w[0]) / w.mean())
        upper, _mid, lower = c.bollinger(10, 2.0)
        squeeze = (upper - lower) / c
        atr = bars.atr(5) / c
        cross = c.crossed_above(c.wma(8)) | c.crossed_below(c.max(9).shift(1))
        held = latch(rsi < 35, rsi > 65)  # the built-in, vectorized latch
        return (where(trend, 0.6, 0.2) + 0.3 * hold - 0.1 * z + slope + squeeze - atr + 0.05 * cross
                + 0.2 * held)


def _data(n: int = 300, seed: int = 3) -> dict:
    a = generate_bars(n, seed=seed)
    b = generate_bars(n + 40, seed=seed + 1)
    # B's bars are on a shifted, partly missing timeline: alignment is exercised
    keep = np.ones(len(b["ts"]), dtype=bool)
    keep[::7] = False
    b = {k: v[keep][20:] for k, v in b.items()}
    return {"A": a, "B": b}


DATA = _data()
BASE = backtest(Kitchen, data=DATA, batch_size=10_000)


def _same(x: np.ndarray, y: np.ndarray) -> bool:
    return np.allclose(x, y, rtol=1e-12, atol=1e-12, equal_nan=True)


def _assert_same_result(a, b):
    assert a.ts.tolist() == b.ts.tolist()
    assert _same(a.returns, b.returns)
    assert _same(a.equity, b.equity)
    assert _same(a.bars.column("weight").to_numpy(), b.bars.column("weight").to_numpy())
    assert a.bars.column("symbol").to_pylist() == b.bars.column("symbol").to_pylist()
    for k, v in a.metrics.items():
        assert np.isclose(v, b.metrics[k], rtol=1e-12, atol=1e-12, equal_nan=True), k


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(1, 120), min_size=1, max_size=6))
def test_batch_invariance_any_split(sizes):
    _assert_same_result(backtest(Kitchen, data=DATA, batch_size=sizes), BASE)


def test_batch_invariance_one_bar_per_batch_is_bit_identical():
    one = backtest(Kitchen, data=DATA, batch_size=1)
    assert np.array_equal(one.returns, BASE.returns)
    assert np.array_equal(one.bars.column("weight").to_numpy(),
                          BASE.bars.column("weight").to_numpy())


def test_determinism_one_and_two_workers():
    again = backtest(Kitchen, data=DATA, batch_size=37)
    two = backtest(Kitchen, data=DATA, batch_size=37, workers=2)
    assert np.array_equal(again.returns, BASE.returns)
    _assert_same_result(two, BASE)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cut=st.integers(60, 250), bump=st.floats(0.5, 2.0))
def test_no_look_ahead(cut, bump):
    """Changing bars after t changes nothing computed at or before t."""
    t = int(DATA["A"]["ts"][cut])
    changed = {}
    for s, b in DATA.items():
        after = b["ts"] > t
        nb = {k: v.copy() for k, v in b.items()}
        for k in ("open", "high", "low", "close"):
            nb[k][after] *= bump
        changed[s] = nb
    other = backtest(Kitchen, data=changed, batch_size=50)
    upto = BASE.ts <= t
    assert np.array_equal(other.returns[upto], BASE.returns[upto])
    rows = BASE.bars.column("ts").to_numpy() <= t
    assert np.array_equal(other.bars.column("weight").to_numpy()[rows],
                          BASE.bars.column("weight").to_numpy()[rows])


# -- indicators against TA-Lib -------------------------------------------------------------

PRICES = generate_bars(2_000, seed=11)


def _evaluate(expr, bars=PRICES, pieces=(2_000,)):
    state = ProgramState(Program({"x": expr}))
    out, pos = [], 0
    for size in pieces:
        part = {k: v[pos: pos + size] for k, v in bars.items()}
        out.append(state.evaluate(part)["x"])
        pos += size
    return np.concatenate(out)


@pytest.mark.parametrize(
    ("name", "expr", "reference", "unstable"),
    [
        ("SMA", col("close").sma(30), lambda b: talib.SMA(b["close"], 30), 0),
        ("EMA", col("close").ema(20), lambda b: talib.EMA(b["close"], 20), 0),
        ("WMA", col("close").wma(15), lambda b: talib.WMA(b["close"], 15), 0),
        ("RSI", col("close").rsi(14), lambda b: talib.RSI(b["close"], 14), 0),
        ("STDDEV", col("close").std(20), lambda b: talib.STDDEV(b["close"], 20, 1), 0),
        ("BB_UP", col("close").bollinger(20, 2).upper,
         lambda b: talib.BBANDS(b["close"], 20, 2, 2)[0], 0),
        ("BB_LOW", col("close").bollinger(20, 2.5).lower,
         lambda b: talib.BBANDS(b["close"], 20, 2.5, 2.5)[2], 0),
        ("MACD", col("close").macd(12, 26, 9).macd, lambda b: talib.MACD(b["close"])[0], 300),
        ("MACD_SIG", col("close").macd(12, 26, 9).signal,
         lambda b: talib.MACD(b["close"])[1], 300),
        ("MACD_HIST", col("close").macd(12, 26, 9).hist,
         lambda b: talib.MACD(b["close"])[2], 300),
    ],
)
def test_indicators_equal_talib(name, expr, reference, unstable):
    got = _evaluate(expr, pieces=(333, 1, 666, 1_000))
    want = reference(PRICES)
    defined = ~np.isnan(want)
    defined[:unstable] = False
    first = int(np.argmax(~np.isnan(want)))
    assert np.isnan(got[:first]).all() or unstable, f"{name}: values before TA-Lib's first"
    np.testing.assert_allclose(got[defined], want[defined], rtol=0, atol=1e-9)


def test_atr_equals_talib():
    from qmtl.strategy import Bars

    got = _evaluate(Bars().atr(14), pieces=(500, 1_500))
    want = talib.ATR(PRICES["high"], PRICES["low"], PRICES["close"], 14)
    defined = ~np.isnan(want)
    assert np.isnan(got[~defined]).all()
    np.testing.assert_allclose(got[defined], want[defined], rtol=0, atol=1e-9)


def test_rolling_apply_equals_pandas():
    fn = lambda w: float(np.percentile(w, 75) - w.min())  # noqa: E731
    got = _evaluate(col("close").rolling(9).apply(fn), pieces=(100, 900, 1_000))
    want = pd.Series(PRICES["close"]).rolling(9).apply(fn, raw=True).to_numpy()
    np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)


def test_shared_nodes_are_computed_once():
    c = col("close")
    prog = Program({"s1": c.sma(10) > c.sma(50), "s2": (c.sma(10) - c.sma(50)) / c.std(50)})
    state = ProgramState(prog)
    state.evaluate({k: v[:100] for k, v in PRICES.items()})
    stateful = [n for n in prog.nodes if n.op not in ("col", "const")]
    assert state.kernel_calls == len(stateful)
    assert sum(n.op == "rolling_mean" for n in stateful) == 2


# -- user operators ------------------------------------------------------------------------

def test_user_operator_runs_batch_invariantly():
    enter = (PRICES["close"] < np.roll(PRICES["close"], 1)).astype(float)
    leave = 1.0 - enter
    whole = check_batch_invariance(Latch, [enter, leave])
    node = Latch()(col("close") < col("close").shift(1), col("close") >= col("close").shift(1))
    got = _evaluate(node, pieces=(1, 2, 997, 1_000))
    assert np.array_equal(got[1:], whole[1:])


def test_non_invariant_operator_is_caught():
    class PerBatchMean(Operator):
        def update(self, x):
            return x - x.mean()

    with pytest.raises(AssertionError, match="depends on how the input was split"):
        check_batch_invariance(PerBatchMean, [PRICES["close"][:50]])


def test_operator_returning_wrong_shape_is_reported():
    class Short(Operator):
        def update(self, x):
            return x[:-1]

    class UsesShort(Strategy):
        symbols = ["A"]

        def signal(self, bars):
            return Short()(bars.close)

    with pytest.raises(ValueError, match=r"Short.update returned shape \(9,\) for a batch of 10"):
        backtest(UsesShort, data={"A": {k: v[:10] for k, v in PRICES.items()}})


# -- bad input -----------------------------------------------------------------------------

class Long(Strategy):
    symbols = ["A"]

    def signal(self, bars):
        return 1.0


def _bars(n=20):
    return {k: v[:n].copy() for k, v in PRICES.items()}


def test_nan_price_names_symbol_and_ts():
    bars = _bars()
    bars["close"][7] = np.nan
    with pytest.raises(BadBarsError, match="A: .*" + str(int(bars["ts"][7]))):
        backtest(Long, data={"A": bars})


def test_duplicate_ts_raise_or_drop():
    bars = _bars()
    bars["ts"][5] = bars["ts"][4]
    with pytest.raises(BadBarsError, match=r"A: .*ts"):
        backtest(Long, data={"A": bars}, batch_size=3)
    kept = backtest(Long, data={"A": bars}, batch_size=3, on_bad_bars="drop")
    assert len(kept.returns) == 19


def test_unknown_symbol_and_empty_range():
    with pytest.raises(BacktestError, match="unknown symbol 'A': available: B"):
        backtest(Long, data={"B": _bars()})
    with pytest.raises(BacktestError, match="no bars for A between"):
        backtest(Long, data={"A": _bars()}, start="2100-01-01")
    with pytest.raises(BacktestError, match="empty date range"):
        backtest(Long, data={"A": _bars()}, start="2020-01-02", end="2019-01-01")


def test_returns_follow_the_formula_for_a_long_hold():
    bars = _bars(50)
    res = backtest(Long, data={"A": bars}, cost_bps=10.0)
    close = bars["close"]
    want = np.r_[0.0, close[1:] / close[:-1] - 1.0]
    want[1] -= 10.0 / 1e4  # entering at bar 0 costs 10 bp of turnover, charged at bar 1
    np.testing.assert_allclose(res.returns, want, rtol=1e-12, atol=1e-15)
    assert res.metrics["n_bars"] == 50


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from([0.0, 1.0, np.nan]), st.sampled_from([0.0, 1.0, np.nan])),
             min_size=1, max_size=60),
    st.lists(st.integers(1, 9), min_size=1, max_size=8),
)
def test_builtin_latch_equals_the_python_loop_for_any_split(pairs, sizes):
    """latch(enter, leave) = the user-style Latch loop (NaN never fires), whole or in pieces."""
    enter = np.array([p[0] for p in pairs])
    leave = np.array([p[1] for p in pairs])
    want = Latch().update(np.nan_to_num(enter), np.nan_to_num(leave))
    prog = Program({"w": latch(col("open"), col("close"))})
    whole = ProgramState(prog).evaluate({"open": enter, "close": leave})["w"]
    assert np.array_equal(whole, want)
    state, pos, parts, i = ProgramState(prog), 0, [], 0
    while pos < len(enter):
        k = sizes[i % len(sizes)]
        parts.append(state.evaluate({"open": enter[pos:pos + k], "close": leave[pos:pos + k]})["w"])
        pos, i = pos + k, i + 1
    assert np.array_equal(np.concatenate(parts), want)
