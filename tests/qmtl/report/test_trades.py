"""The position-change list against a hand-worked example and the run's own numbers."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from qmtl.report import from_result
from qmtl.report.stats import Rows
from qmtl.report.trades import position_changes


def hand_rows() -> Rows:
    # times 1..4, two symbols; A: 0 -> 1 at t1, held, -> 0.5 at t3; B: 0.5 from t2 to t4
    ts = np.array([1, 1, 2, 2, 3, 3, 4, 4])
    code = np.array([0, 1] * 4)
    weight = np.array([1.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.0])
    close = np.array([10.0, 50.0, 11.0, 50.0, 12.1, 55.0, 12.1, 44.0])
    # contributions: the previous weight times the move (no costs)
    contrib = np.array([0.0, 0.0, 0.1, 0.0, 0.1, 0.05, 0.0, -0.1])
    r = np.array([0.0, 0.1, 0.15, -0.1])
    eq_t = np.cumprod(1 + r)
    equity = np.repeat(eq_t, 2)
    return Rows(ts, code, ["A", "B"], weight, contrib, equity, close)


def test_position_changes_by_hand():
    t = position_changes(hand_rows())
    assert t["ts"].tolist() == [1, 2, 3, 4]
    assert t["symbol"].tolist() == ["A", "B", "A", "B"]
    assert t["weight_before"].tolist() == [0.0, 0.0, 1.0, 0.5]
    assert t["weight_after"].tolist() == [1.0, 0.5, 0.5, 0.0]
    assert t["bars"].tolist() == [2, 2, 1, 0]
    # A long from 10 to 12.1 (+21%), then half from 12.1 to 12.1; B half from 50 to 44
    np.testing.assert_allclose(t["return"], [0.21, -0.12, 0.0, 0.0])
    # P&L in starting capital: A 0.1 * 1.0 + 0.1 * 1.1; B 0.05 * 1.1 - 0.1 * 1.265
    np.testing.assert_allclose(t["pnl"], [0.21, 0.055 - 0.1265, 0.0, 0.0])


def test_trades_of_a_run_add_up_to_its_contributions(result):
    run = from_result(result)
    trades = run.position_changes()
    assert isinstance(trades, pa.Table)
    assert trades.column_names == ["ts", "symbol", "weight_before", "weight_after", "bars",
                                   "return", "pnl"]
    contrib = run.rows.contributions()
    for symbol in ("AAA", "BBB"):
        mine = trades.filter(pa.compute.equal(trades.column("symbol"), symbol))
        assert sum(mine.column("pnl").to_pylist()) == pytest.approx(contrib[symbol], abs=1e-12)
        before = mine.column("weight_before").to_pylist()
        after = mine.column("weight_after").to_pylist()
        assert before[0] == 0.0 and before[1:] == after[:-1]  # a chain of changes
    assert sorted(trades.column("ts").to_pylist()) == trades.column("ts").to_pylist()


def test_result_trades_is_the_same_table(result):
    assert result.trades.equals(from_result(result).trades())


def test_a_run_without_closes_has_no_return_but_its_pnl():
    rows = hand_rows()
    rows.close = None
    t = position_changes(rows)
    assert np.isnan(t["return"]).all()
    np.testing.assert_allclose(t["pnl"][:2], [0.21, 0.055 - 0.1265])


# ---- round trips ---------------------------------------------------------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dataflows.portfolio import Portfolio, SignalBatch  # noqa: E402
from qmtl.report.load import trades_table  # noqa: E402
from qmtl.report.trades import round_trips  # noqa: E402


def engine_rows(weights: dict[str, list[float]], closes: dict[str, list[float]],
                cost_bps: float) -> Rows:
    """The rows the engine itself writes for these weights and closes (every symbol a bar
    at every time), as a run folder holds them."""
    symbols = sorted(weights)
    p = Portfolio(symbols, cost_bps=cost_bps, max_gross=1e9, prices=True)
    n = len(next(iter(weights.values())))
    for s in symbols:
        p.push(SignalBatch(s, np.arange(1, n + 1), np.array(weights[s]), np.array(closes[s])))
    out = p.drain()
    r = out.symbol_rows
    return Rows(r["ts"], r["symbol"], out.symbols, r["weight"], r["return"], r["equity"],
                r["close"])


def test_the_flat_stretch_after_an_exit_is_not_a_trade():
    # long for 4 bars, then flat for 30 while the price falls: one trip, held 4 bars
    w = [1.0] * 4 + [0.0] * 30
    close = [100.0, 101.0, 102.0, 103.0, 104.0, *np.linspace(103.0, 97.6, 29)]
    rows = engine_rows({"A": w}, {"A": close}, 0.0)
    t = round_trips(rows)
    assert t["side"].tolist() == ["long"] and t["open"].tolist() == [False]
    assert t["entry"].tolist() == [1] and t["exit"].tolist() == [5]
    assert t["bars"].tolist() == [4]
    np.testing.assert_allclose(t["return"], [104.0 / 100.0 - 1])
    np.testing.assert_allclose(t["pnl"], [0.04])


def test_round_trips_by_hand_with_a_partial_close_a_flip_and_costs():
    # A: 0 -> 1 at t1, trimmed to 0.5 at t3, flipped to -1 at t4, closed at t6
    w = [1.0, 1.0, 0.5, -1.0, -1.0, 0.0, 0.0]
    close = [10.0, 11.0, 12.0, 12.0, 11.0, 10.0, 10.0]
    c = 10 / 1e4
    rows = engine_rows({"A": w}, {"A": close}, 10.0)
    t = round_trips(rows)
    assert t["side"].tolist() == ["long", "short"]
    assert t["entry"].tolist() == [1, 4] and t["exit"].tolist() == [4, 6]
    assert t["bars"].tolist() == [3, 2] and t["open"].tolist() == [False, False]
    np.testing.assert_allclose(t["return"], [12 / 10 - 1, -(10 / 12 - 1)])
    # per-bar contributions (engine formula: the weight held times the move, less the cost
    # of the change decided at the bar before), and the equity before each bar
    r = [0.0, 0.1 - c, 1 / 11 - 0.0, 0.0 - 0.5 * c, -1 * (11 / 12 - 1) - 1.5 * c,
         -1 * (10 / 11 - 1), 0.0 - 1 * c]
    eq = np.cumprod(1 + np.array(r))
    eb = np.concatenate([[1.0], eq[:-1]])
    pnl = np.array(r) * eb
    # the flip's cost (1.5c of the bar t5) splits 0.5 : 1 between the long and the short
    long_pnl = pnl[1] + pnl[2] + pnl[3] - 0.5 / 1.5 * 1.5 * c * eb[4]
    short_pnl = pnl[4] + 0.5 / 1.5 * 1.5 * c * eb[4] + pnl[5] + pnl[6]
    np.testing.assert_allclose(t["pnl"], [long_pnl, short_pnl], rtol=1e-12)
    assert t["pnl"].sum() == pytest.approx(eq[-1] - 1, abs=1e-12)


WEIGHTS = st.sampled_from([-1.0, -0.5, 0.0, 0.0, 0.0, 0.5, 1.0])


@settings(max_examples=200, deadline=None)
@given(
    st.integers(2, 40).flatmap(lambda n: st.tuples(
        st.lists(WEIGHTS, min_size=n, max_size=n),
        st.lists(WEIGHTS, min_size=n, max_size=n),
        st.lists(st.floats(0.5, 2.0), min_size=n, max_size=n),
        st.lists(st.floats(0.5, 2.0), min_size=n, max_size=n),
    )),
    st.sampled_from([0.0, 25.0]),
)
def test_round_trips_add_up_to_the_total_pnl(paths, cost_bps):
    wa, wb, ca, cb = paths
    rows = engine_rows({"A": wa, "B": wb}, {"A": ca, "B": cb}, cost_bps)
    t = round_trips(rows)
    total = float(rows.curve[-1] - 1.0)
    # every trip, open or closed, adds up to the run's P&L; each symbol's to its contribution
    assert t["pnl"].sum() == pytest.approx(total, abs=1e-9)
    contrib = rows.contributions()
    for s in ("A", "B"):
        assert t["pnl"][t["symbol"] == s].sum() == pytest.approx(contrib[s], abs=1e-9)
    # the trips of a symbol never overlap, one side each, and a closed one has left its side
    for s, w in (("A", wa), ("B", wb)):
        mine = t["symbol"] == s
        entries, exits = t["entry"][mine], t["exit"][mine]
        for i, (e, x, side, is_open) in enumerate(zip(entries, exits, t["side"][mine],
                                                       t["open"][mine], strict=True)):
            held = np.array(w[e - 1:(len(w) if is_open else x - 1)])
            assert (np.sign(held) == (1 if side == "long" else -1)).all()
            if not is_open:
                assert np.sign(w[x - 1]) != np.sign(held[0])
                assert i == len(entries) - 1 or entries[i + 1] >= x
            else:
                assert i == len(entries) - 1
    # where both books end flat, the closed trips alone add up to the total
    if wa[-1] == 0 and wb[-1] == 0:
        assert not t["open"].any()
    closed = t["pnl"][~t["open"]].sum()
    assert closed == pytest.approx(total - t["pnl"][t["open"]].sum(), abs=1e-9)


def test_run_trades_are_its_round_trips(result):
    run = from_result(result)
    trades = run.trades()
    assert trades.column_names == ["symbol", "side", "entry", "exit", "bars", "return", "pnl",
                                   "open"]
    assert trades.equals(trades_table(run.rows))
    assert sum(trades.column("pnl").to_pylist()) == pytest.approx(
        result.metrics["total_return"], abs=1e-9)
