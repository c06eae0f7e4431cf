"""Constants passed to element-wise kernels as numbers give the same bits as constants filled
to the batch's length (what the evaluator did before), whatever the expression and batching."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.graph import Program, ProgramState
from qmtl import latch, where
from qmtl.core.expr import col

c = col("close")
EXPRS = {
    "rsi latch": latch(c.rsi(3) < 30, c.rsi(3) > 50),
    "where": where(c == 0.0, 0.0 * c, 100.0 * c / (c - 1.0)),
    "ne and or": ((c != 2.0) & (c > -1.0)) | (c <= 0.5),
    "consts only": c * 0.0 + (2.0 * 3.0),
    "division by a constant": 1.0 / c - c / 0.0,
    "a constant weight": c.sma(2) * 0.0 + 1.0,
}


def _run(expr, x, cuts, scalars):
    prog = Program({"w": expr})
    if not scalars:
        prog.scalars = frozenset()
    st_ = ProgramState(prog)
    out, pos = [], 0
    for size in [*cuts, len(x)]:
        part = x[pos : pos + size]
        pos += len(part)
        out.append(np.asarray(st_.evaluate({"close": part})["w"]))
        if pos >= len(x):
            break
    return np.concatenate(out)


@pytest.mark.parametrize("name", sorted(EXPRS))
@settings(max_examples=25, deadline=None)
@given(
    xs=st.lists(
        st.one_of(st.sampled_from([0.0, -0.0, 1.0, 2.0, float("nan"), 0.5]), st.floats(-100, 100)),
        min_size=1,
        max_size=40,
    ),
    cuts=st.lists(st.integers(0, 6), max_size=8),
)
def test_scalar_constants_give_the_filled_bits(name, xs, cuts):
    x = np.array(xs)
    with np.errstate(all="ignore"):
        got = _run(EXPRS[name], x, cuts, True)
        want = _run(EXPRS[name], x, [], False)
    assert got.shape == x.shape and got.dtype == np.float64
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(np.signbit(got), np.signbit(want))


def test_which_constants_stay_numbers():
    def numbers(expr):
        prog = Program({"w": expr})
        return sorted(n.params["value"] for n in prog.nodes if n.id in prog.scalars)

    assert numbers(where(c > 0.5, 1.0, 2.0)) == [0.5, 1.0, 2.0]
    assert numbers(latch(c > 0.5, 0.0)) == [0.5]  # the latch takes arrays: 0.0 filled
    assert numbers(c**2.0) == []  # pow may take a scalar exponent's own path
