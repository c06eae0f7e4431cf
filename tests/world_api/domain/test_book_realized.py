"""The world's realized return from its book: once the book reports, the realized series is
the book's points (the sum of the records' returns dropped, later records adding nothing), a
re-sent point is ignored, the pro forma is what the records alone give, and a restart from
the saved state keeps the source."""

from __future__ import annotations

import numpy as np
import pytest

from tests.world_api.returns_scenario import POLICY, updates
from world_api.domain.evaluator import WorldEngine
from world_api.domain.policy import parse_policy
from world_api.domain.world_returns import ReturnSeries

UPDATES = updates(4, seed=3)


def marked_returns(closes: list[float], qty: float, cash: float, fee: float) -> list[float]:
    """An account bought ``qty`` at the first close paying ``fee``, marked at each close
    after: equity = cash + qty * close, the return per bar from it (by hand)."""
    equity = [cash + qty * closes[0] - fee]
    equity += [cash + qty * c - fee for c in closes[1:]]
    start = cash + qty * closes[0]  # before the fee: the first bar's return pays it
    out, prev = [], start
    for e in equity:
        out.append(e / prev - 1.0)
        prev = e
    return out


def test_book_replaces_records_and_pro_forma_stays():
    book, plain = WorldEngine(parse_policy(POLICY)), WorldEngine(parse_policy(POLICY))
    half = len(UPDATES) // 2
    for u in UPDATES[:half]:
        book.ingest(u)
        plain.ingest(u)
    assert len(book.realized) > 0 and book.realized.source == "records"
    ts0 = int(book.realized.ts[-1]) + 1
    rets = marked_returns([100.0, 101.0, 99.5, 102.0], qty=10.0, cash=9_000.0, fee=1.5)
    pts = [(ts0 + i, r) for i, r in enumerate(rets)]
    assert book.book_returns(pts) == 4
    for u in UPDATES[half:]:
        book.ingest(u)
        plain.ingest(u)
    # the records' paper/live returns went on adding to the plain engine only
    assert len(plain.realized) > half and plain.realized.source == "records"
    ts, r = book.realized.arrays()
    assert ts.tolist() == [t for t, _ in pts]
    np.testing.assert_allclose(r, rets, rtol=0, atol=0)
    # the book's equity is the account's: 1 + return is equity after / equity before
    assert book.realized.equity()[-1] == pytest.approx((9_000.0 + 10 * 102.0 - 1.5) / 10_000.0)
    # pro forma unchanged by the book
    for a, b in zip(book.pro_forma()[:2], plain.pro_forma()[:2], strict=True):
        np.testing.assert_array_equal(a, b)
    assert book.world_metrics()["pro_forma"] == plain.world_metrics()["pro_forma"]
    assert book.world_metrics()["realized"]["n_bars"] == 4


def test_resent_points_are_ignored_and_restart_keeps_the_source():
    eng = WorldEngine(parse_policy(POLICY))
    assert eng.book_returns([(10, 0.01), (20, -0.02)]) == 2
    assert eng.book_returns([(20, 0.5), (30, 0.03)]) == 1  # (20, 0.5) re-sent: first wins
    again = WorldEngine.from_state(eng.to_state())
    assert again.realized.source == "book"
    assert again.realized.points() == ([10, 20, 30], [0.01, -0.02, 0.03])
    for u in UPDATES:  # the records of a book world are kept but not realized
        again.ingest(u)
    assert again.realized.points() == ([10, 20, 30], [0.01, -0.02, 0.03])
    assert len(again.pro_forma()[0]) > 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -1.0, -2.0])
def test_bad_book_return_changes_nothing(bad):
    rs = ReturnSeries()
    rs.add([(1, 0.5)], 1.0)
    with pytest.raises(ValueError, match=r"\[1\]\.return"):
        rs.book([(2, 0.01), (3, bad)])
    assert rs.points() == ([1], [0.5]) and rs.source == "records"
