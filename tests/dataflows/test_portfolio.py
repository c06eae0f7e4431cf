"""Automatic returns: the DESIGN.md formula, checked against a plain-Python reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.portfolio import Portfolio, SignalBatch


def reference(rows: dict[str, list[tuple[int, float, float]]], cost_bps: float, max_gross: float):
    """Loop over the union timeline, one time at a time, exactly as DESIGN.md states."""
    symbols = sorted(rows)
    times = sorted({t for s in symbols for t, _, _ in rows[s]})
    lookup = {s: {t: (w, c) for t, w, c in rows[s]} for s in symbols}
    raw = dict.fromkeys(symbols, 0.0)
    last_close: dict[str, float | None] = dict.fromkeys(symbols, None)
    held = dict.fromkeys(symbols, 0.0)
    prev_turn = dict.fromkeys(symbols, 0.0)
    equity, out = 1.0, []
    for t in times:
        moved = {}
        for s in symbols:
            if t in lookup[s]:
                w, c = lookup[s][t]
                moved[s] = 0.0 if last_close[s] is None else c / last_close[s] - 1.0
                raw[s], last_close[s] = w, c
            else:
                moved[s] = 0.0
        gross = sum(abs(v) for v in raw.values())
        scale = max_gross / gross if gross > max_gross else 1.0
        new = {s: raw[s] * scale for s in symbols}
        r = sum(held[s] * moved[s] - cost_bps / 1e4 * prev_turn[s] for s in symbols)
        prev_turn = {s: abs(new[s] - held[s]) for s in symbols}
        held = new
        equity *= 1.0 + r
        out.append((t, r, equity, sum(prev_turn.values()), sum(abs(v) for v in new.values())))
    return out


def run(portfolio: Portfolio, pieces: list[SignalBatch]):
    outs = []
    for piece in pieces:
        portfolio.push(piece)
        got = portfolio.drain()
        if got is not None:
            outs.append(got)
    final = portfolio.drain(final=True)
    if final is not None:
        outs.append(final)
    return outs


def test_single_symbol_hand_computed():
    # w decided at t earns t+1's move; 10 bp charged on the turnover, one bar later.
    p = Portfolio(["A"], cost_bps=10.0)
    p.push(SignalBatch("A", np.array([1, 2, 3, 4]), np.array([0.0, 1.0, 1.0, 0.0]),
                       np.array([100.0, 100.0, 110.0, 99.0])))
    out = p.drain(final=True)
    assert out.returns.tolist() == pytest.approx([0.0, 0.0, 0.1 - 0.001, -0.1])
    assert out.turnover.tolist() == [0.0, 1.0, 0.0, 1.0]
    assert out.equity[-1] == pytest.approx(1.099 * 0.9)


def test_gross_cap_scales_weights():
    p = Portfolio(["A", "B"], max_gross=1.0)
    for s in "AB":
        p.push(SignalBatch(s, np.array([1, 2]), np.array([1.0, 1.0]), np.array([10.0, 11.0])))
    out = p.drain()
    assert out.gross.tolist() == [1.0, 1.0]
    assert out.returns[1] == pytest.approx(0.1)  # 0.5 * 10% + 0.5 * 10%
    assert sorted(out.symbol_rows["weight"].tolist()) == [0.5, 0.5, 0.5, 0.5]


def test_waits_for_every_symbol_then_flushes_at_end():
    p = Portfolio(["A", "B"])
    p.push(SignalBatch("A", np.array([1, 2, 3]), np.ones(3), np.array([1.0, 2.0, 3.0])))
    assert p.drain() is None
    p.push(SignalBatch("B", np.array([2]), np.zeros(1), np.array([5.0])))
    first = p.drain()
    assert first.ts.tolist() == [1, 2]
    last = p.drain(final=True)
    assert last.ts.tolist() == [3]


def test_unknown_symbol_is_refused():
    with pytest.raises(KeyError, match="not in this portfolio"):
        Portfolio(["A"]).push(SignalBatch("Z", np.array([1]), np.ones(1), np.ones(1)))


@st.composite
def multi_symbol_signals(draw):
    n_sym = draw(st.integers(1, 3))
    data = {}
    for k in range(n_sym):
        times = sorted(draw(st.sets(st.integers(1, 40), min_size=1, max_size=25)))
        weights = draw(st.lists(st.sampled_from([-1.0, -0.5, 0.0, 0.3, 1.0, 2.0]),
                                min_size=len(times), max_size=len(times)))
        closes = draw(st.lists(st.floats(1.0, 200.0), min_size=len(times), max_size=len(times)))
        data[f"S{k}"] = list(zip(times, weights, closes, strict=True))
    cost = draw(st.sampled_from([0.0, 5.0]))
    gross = draw(st.sampled_from([0.5, 1.0, 3.0]))
    cuts = draw(st.lists(st.integers(1, 6), min_size=1, max_size=8))
    return data, cost, gross, cuts


def _pieces(data, cuts):
    """Split each symbol's rows into pieces of the given sizes, interleaved by symbol."""
    pieces, pos = [], dict.fromkeys(data, 0)
    i = 0
    while any(pos[s] < len(data[s]) for s in data):
        for s in sorted(data):
            size = cuts[i % len(cuts)]
            i += 1
            chunk = data[s][pos[s]: pos[s] + size]
            pos[s] += size
            if chunk:
                t, w, c = (np.array(x) for x in zip(*chunk, strict=True))
                pieces.append(SignalBatch(s, t.astype(np.int64), w, c))
    return pieces


@settings(max_examples=120, deadline=None)
@given(multi_symbol_signals())
def test_matches_reference_for_any_batching(case):
    data, cost, gross, cuts = case
    expected = reference(data, cost, gross)
    outs = run(Portfolio(list(data), cost, gross), _pieces(data, cuts))
    ts = np.concatenate([o.ts for o in outs])
    assert ts.tolist() == [row[0] for row in expected]
    np.testing.assert_allclose(np.concatenate([o.returns for o in outs]),
                               [row[1] for row in expected], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(np.concatenate([o.equity for o in outs]),
                               [row[2] for row in expected], rtol=1e-12)
    np.testing.assert_allclose(np.concatenate([o.turnover for o in outs]),
                               [row[3] for row in expected], rtol=1e-12, atol=1e-15)

    # bit-identical to one-bar-per-batch and to one-batch processing
    one_by_one = run(Portfolio(list(data), cost, gross), _pieces(data, [1]))
    whole = run(Portfolio(list(data), cost, gross), _pieces(data, [10_000]))
    for other in (one_by_one, whole):
        assert np.array_equal(np.concatenate([o.returns for o in other]),
                              np.concatenate([o.returns for o in outs]))
        assert np.array_equal(np.concatenate([o.equity for o in other]),
                              np.concatenate([o.equity for o in outs]))


@settings(max_examples=60, deadline=None)
@given(multi_symbol_signals(), st.booleans())
def test_each_row_carries_its_bars_close(case, next_open):
    """The rows' ``close`` (the run folder's prices) is each symbol's own bar close at the
    row's time, in any batching, on the default and the general execution paths."""
    from dataflows.execution import Execution

    data, cost, gross, cuts = case
    ex = Execution(rule="next_open") if next_open else None
    for sizes in (cuts, [1], [10_000]):
        outs = run(Portfolio(list(data), cost, gross, execution=ex), _pieces(data, sizes))
        rows = {k: np.concatenate([o.symbol_rows[k] for o in outs]) for k in ("ts", "symbol",
                                                                             "close")}
        names = outs[0].symbols
        for i, s in enumerate(names):
            mine = rows["symbol"] == i
            assert rows["ts"][mine].tolist() == [t for t, _, _ in data[s]]
            assert rows["close"][mine].tolist() == [c for _, _, c in data[s]]
