"""The execution rule and cost model (dataflows/execution.py) in the portfolio, the backtest
and the paper broker: hand-computed returns, pandas references, batch invariance, no
look-ahead, and a paper run that fills exactly the trades its backtest assumed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from bytewax.testing import TestingSource, run_main
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.data.synthetic import generate_bars
from connectors.live.order_store import open_order_store
from connectors.live.paper_broker import PaperBroker
from dataflows.compiler import StrategySpec, run_dataflow
from dataflows.control import RunControl
from dataflows.execution import Execution, rolling_sigma
from dataflows.gate import ActivationBook
from dataflows.live_flow import OrderContext, build_live_flow
from dataflows.portfolio import Portfolio, SignalBatch
from dataflows.replay import CallbackSink
from qmtl import Strategy, StrategyError, backtest
from qmtl.core.expr import col

DAY = 86_400 * 10**9


def one(ex: Execution, w, o, c, cost_bps=0.0):
    p = Portfolio(["A"], cost_bps, 1.0, execution=ex)
    n = len(w)
    p.push(
        SignalBatch(
            "A", np.arange(1, n + 1), np.array(w, float), np.array(c, float), np.array(o, float)
        )
    )
    return p.drain(final=True)


def test_next_open_hand_computed():
    w, o, c = [1, 1, 0, 0], [10, 11, 12, 13], [10, 12, 11, 14]
    out = one(Execution(rule="next_open"), w, o, c)
    # bar 2: bought at its open 11 -> 12; bar 3: held, open 12 -> close 11;
    # bar 4: held from the close 11 to the open 13, sold there
    assert out.returns.tolist() == pytest.approx([0.0, 1 / 11, -1 / 12, 2 / 11], abs=1e-15)
    assert out.turnover.tolist() == [0.0, 1.0, 0.0, 1.0]
    # the close rule on the same bars: bought at bar 1's close 10
    close = one(Execution(spread_bps=0.0), w, o, c)  # default execution: the fast path
    assert close.returns.tolist() == pytest.approx([0.0, 0.2, -1 / 12, 0.0], abs=1e-15)


def test_next_open_costs_hand_computed():
    # 10 bp fee + 20 bp spread (10 bp slippage a fill): 20 bp of each trade, at the open
    out = one(
        Execution(rule="next_open", spread_bps=20.0),
        [1, 1, 0, 0],
        [10, 11, 12, 13],
        [10, 12, 11, 14],
        cost_bps=10.0,
    )
    expected = [0.0, 1 / 11 - 0.002, -1 / 12, (1 + 2 / 11) * (1 - 0.002) - 1]
    assert out.returns.tolist() == pytest.approx(expected, abs=1e-15)
    assert out.symbol_rows["slip"].tolist() == [0.001] * 4


def test_close_rule_spread_is_half_the_spread_per_unit_of_turnover():
    w = np.array([0.0, 1.0, 1.0, -0.5, -0.5, 0.0])
    c = np.array([10.0, 11.0, 10.5, 10.0, 9.0, 9.5])
    spread = one(Execution(spread_bps=8.0), w, c, c, cost_bps=2.0)
    fee_only = one(Execution(), w, c, c, cost_bps=6.0)  # 2 bp + 8 / 2 bp
    np.testing.assert_allclose(spread.returns, fee_only.returns, rtol=0, atol=1e-15)


def test_rolling_sigma_equals_pandas():
    c = generate_bars(300, seed=3)["close"]
    sig, _ = rolling_sigma(c, np.empty(0), 20)
    ref = pd.Series(c).pct_change().rolling(20).std(ddof=0).fillna(0.0).to_numpy()
    np.testing.assert_allclose(sig, ref, rtol=1e-12, atol=1e-15)


def test_next_open_backtest_equals_a_pandas_reference():
    class Sma(Strategy):
        symbols = ["A"]
        execution = "next_open"
        cost_bps = 5.0
        spread_bps = 4.0

        def signal(self, bars):
            return bars.close.sma(5) > bars.close.sma(20)

    data = {"A": generate_bars(400, seed=11)}
    res = backtest(Sma, data)
    df = pd.DataFrame({k: data["A"][k] for k in ("open", "close")})
    w = res.bars.to_pandas()["weight"].to_numpy()
    new = pd.Series(w).shift(1).fillna(0.0)
    old = pd.Series(w).shift(2).fillna(0.0)
    gap = (df.open / df.close.shift(1) - 1).fillna(0.0)
    intra = df.close / df.open - 1
    ref = old * gap + (1 + old * gap) * (new * intra - (5e-4 + 2e-4) * (new - old).abs())
    np.testing.assert_allclose(res.returns, ref.to_numpy(), rtol=1e-12, atol=1e-15)
    assert res.settings["execution"]["rule"] == "next_open"
    # a decision at t never sees bar t + 1: the weights are the close rule's
    close = backtest(Sma, data, execution="close")
    assert np.array_equal(close.bars.to_pandas()["weight"].to_numpy(), w)
    assert not np.allclose(close.returns, res.returns)


def test_bad_execution_settings_are_refused():
    class S(Strategy):
        symbols = ["A"]

    with pytest.raises(StrategyError, match="execution rule must be one of close, next_open"):
        S(execution="open")
    with pytest.raises(StrategyError, match="spread_bps must be a finite number >= 0"):
        S(spread_bps=-1.0)


EXECUTIONS = [
    Execution(rule="next_open"),
    Execution(rule="next_open", spread_bps=6.0, slippage_vol=0.5, vol_window=3),
    Execution(rule="close", spread_bps=6.0, slippage_vol=0.5, vol_window=3),
    Execution(
        rule="close", no_trade_band=0.2, min_order_notional=1000.0, lot_size=1.0, capital=10_000.0
    ),
    Execution(
        rule="next_open",
        no_trade_band=0.1,
        lot_size={"S0": 5.0},
        capital=10_000.0,
        slippage_vol=1.0,
        vol_window=2,
    ),
]


@st.composite
def cases(draw):
    n_sym = draw(st.integers(1, 3))
    data = {}
    for k in range(n_sym):
        times = sorted(draw(st.sets(st.integers(1, 40), min_size=1, max_size=25)))
        n = len(times)
        weights = draw(
            st.lists(st.sampled_from([-1.0, -0.5, 0.0, 0.3, 0.35, 1.0]), min_size=n, max_size=n)
        )
        closes = draw(st.lists(st.floats(1.0, 200.0), min_size=n, max_size=n))
        opens = draw(st.lists(st.floats(1.0, 200.0), min_size=n, max_size=n))
        data[f"S{k}"] = list(zip(times, weights, closes, opens, strict=True))
    ex = draw(st.sampled_from(EXECUTIONS))
    cuts = draw(st.lists(st.integers(1, 6), min_size=1, max_size=8))
    return data, ex, cuts


def _pieces(data, cuts, upto=None):
    pieces, pos, i = [], dict.fromkeys(data, 0), 0
    rows = {s: [r for r in v if upto is None or r[0] <= upto] for s, v in data.items()}
    while any(pos[s] < len(rows[s]) for s in rows):
        for s in sorted(rows):
            size = cuts[i % len(cuts)]
            i += 1
            chunk = rows[s][pos[s] : pos[s] + size]
            pos[s] += size
            if chunk:
                t, w, c, o = (np.array(x) for x in zip(*chunk, strict=True))
                pieces.append(SignalBatch(s, t.astype(np.int64), w, c, o))
    return pieces


def _run(data, ex, pieces):
    p = Portfolio(list(data), 3.0, 1.0, execution=ex)
    outs = []
    for piece in pieces:
        p.push(piece)
        got = p.drain()
        if got is not None:
            outs.append(got)
    final = p.drain(final=True)
    if final is not None:
        outs.append(final)
    cat = {
        k: np.concatenate([getattr(o, k) for o in outs])
        for k in ("ts", "returns", "equity", "turnover", "gross")
    }
    for k in ("weight", "return", "slip"):
        cat[k] = np.concatenate([o.symbol_rows[k] for o in outs])
    return cat


@settings(max_examples=150, deadline=None)
@given(cases())
def test_any_batching_gives_identical_outputs_and_no_look_ahead(case):
    data, ex, cuts = case
    outs = _run(data, ex, _pieces(data, cuts))
    for other in (_run(data, ex, _pieces(data, [1])), _run(data, ex, _pieces(data, [10_000]))):
        for k, v in outs.items():
            assert np.array_equal(other[k], v, equal_nan=True), k
    # bars after T change nothing at or before T (a next-open fill waits for its bar)
    upto = int(outs["ts"][len(outs["ts"]) // 2])
    cut = _run(data, ex, _pieces(data, cuts, upto))
    n = len(cut["ts"])
    for k in ("ts", "returns", "equity", "turnover"):
        assert np.array_equal(cut[k], outs[k][:n], equal_nan=True), k


def _live_and_backtest(ex: Execution, cost_bps: float, data, tmp_path):
    """A paper run of an always-changing strategy on ``data`` and its backtest's rows."""
    spec = StrategySpec(
        "s",
        ["A"],
        (col("close") > col("close").sma(3)) * 0.6 + (col("close") > col("close").sma(7)) * 0.35,
        cost_bps,
        1.0,
        252.0,
        execution=ex,
    )
    rows = {}
    for out in run_dataflow([spec], lambda: iter([("A", data)])):
        if out.batch is not None:
            for k, v in out.batch.symbol_rows.items():
                rows.setdefault(k, []).append(v)
    rows = {k: np.concatenate(v) for k, v in rows.items()}
    book = ActivationBook("w")
    book.apply_event({"strategy_id": "s", "active": True, "weight": 1.0, "seq": 1}, now=0.0)
    store = open_order_store(str(tmp_path / f"orders-{ex.rule}.db"))
    seen = []
    ctx = OrderContext(
        "w",
        ex.capital,
        book,
        record=store.record,
        max_activation_age=60.0,
        make_broker=lambda s: PaperBroker(store, "w", s, fee_bps=cost_bps, execution=ex),
        report=lambda s, o, f: seen.append(f),
        clock=lambda: 1.0,
    )
    items = [
        ("bar", ("A", {k: v[i : i + 1] for k, v in data.items()})) for i in range(len(data["ts"]))
    ]
    run_main(
        build_live_flow(
            spec,
            TestingSource(items),
            RunControl(),
            lambda _o: None,
            ctx,
            CallbackSink(lambda _r: None),
        )
    )
    return rows, [f for fs in seen for f in fs]


def _expected_fills(ex: Execution, cost_bps: float, data, rows):
    """The fills the backtest's weights imply, worked out here by hand: an order at each
    change of weight for ``w x capital / close``, filled by the rule at the price plus the
    portfolio's slippage of that bar, to whole lots."""
    w, slip, ts = rows["weight"], rows["slip"], rows["ts"]
    out, held, last = [], 0.0, 0.0
    lot = ex.lot("A")
    for k in range(len(ts)):
        if abs(w[k] - last) <= 1e-9:
            continue
        last = w[k]
        at = k if ex.rule == "close" else k + 1
        if at == len(ts):
            break
        target = w[k] * ex.capital / data["close"][k]
        if lot:
            target = np.floor(abs(target / lot) + 0.5) * np.sign(target) * lot
        ref = data["close"][at] if ex.rule == "close" else data["open"][at]
        qty = target - held
        price = ref * (1 + slip[at] * np.sign(qty))
        out.append((int(ts[at]), qty, price, abs(qty) * price * cost_bps / 1e4))
        held = target
    return out


@pytest.mark.parametrize(
    "ex",
    [
        Execution(rule="close", spread_bps=10.0, slippage_vol=0.3, vol_window=5),
        Execution(rule="next_open", spread_bps=10.0, slippage_vol=0.3, vol_window=5),
        Execution(
            rule="next_open",
            no_trade_band=0.3,
            min_order_notional=2_000.0,
            lot_size=10.0,
            capital=50_000.0,
        ),
    ],
    ids=["close", "next_open", "next_open-sized"],
)
def test_a_paper_run_fills_the_trades_of_its_backtest(ex, tmp_path):
    data = generate_bars(120, seed=5)
    rows, fills = _live_and_backtest(ex, 3.0, data, tmp_path)
    expected = _expected_fills(ex, 3.0, data, rows)
    assert len(fills) == len(expected) > 5
    got = [(f.ts, f.qty, f.price, f.fee) for f in fills]
    np.testing.assert_allclose(np.array(got, float), np.array(expected, float), rtol=1e-12)
    if ex.rule == "close":
        assert all(f.ts == int(f.order_id.rsplit("/", 1)[-1]) for f in fills)
    if ex.lot("A"):
        assert all(abs(f.qty / 10.0 - round(f.qty / 10.0)) < 1e-9 for f in fills)
        # the band and the minimum notional: no fill smaller than either
        assert min(abs(f.qty * f.price) for f in fills) >= 2_000.0 * 0.9
