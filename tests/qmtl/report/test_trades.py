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
    trades = run.trades()
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
