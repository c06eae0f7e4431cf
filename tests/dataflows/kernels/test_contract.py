"""Every built-in kernel keeps the kernel contract: feeding a stream whole or split into any
batches (down to one value) gives the same values, bit for bit; and every operator an
expression can build has a kernel."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dataflows.graph  # noqa: F401  (registers the user-operator kernel, "custom")
from dataflows.kernels import KERNELS, make_kernel
from qmtl.core.expr_nodes import OWN_LOOKBACK

# operator -> (number of inputs, parameters)
CASES: dict[str, tuple[int, dict]] = {
    **{op: (2, {}) for op in ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "lt",
                              "le", "gt", "ge", "eq", "ne", "and", "or", "latch")},
    **{op: (1, {}) for op in ("neg", "abs", "log", "exp", "sqrt", "sign", "not", "sin",
                              "cos")},
    "clip": (1, {"lo": -0.5, "hi": 0.5}),
    "where": (3, {}),
    "fillna": (1, {"value": 0.0}),
    "shift": (1, {"n": 3}),
    "rolling_sum": (1, {"n": 4}),
    "rolling_mean": (1, {"n": 4}),
    "rolling_var": (1, {"n": 4, "ddof": 1}),
    "rolling_min": (1, {"n": 4}),
    "rolling_max": (1, {"n": 4}),
    "wma": (1, {"n": 4}),
    "rolling_apply": (1, {"n": 3, "fn": np.ptp}),
    "ema": (1, {"n": 3, "alpha": 0.5}),
    "ts_rank": (1, {"n": 4}),
    "ts_cov": (2, {"n": 4}),
    "ts_corr": (2, {"n": 4}),
    "ts_argmax": (1, {"n": 4}),
    "ts_argmin": (1, {"n": 3}),
    "ts_product": (1, {"n": 3}),
}


def test_every_registered_kernel_is_exercised():
    assert set(KERNELS) - {"custom"} - {k for k in KERNELS if k.startswith("_doc")} == set(CASES)


def test_every_stateful_operator_has_a_kernel():
    assert set(OWN_LOOKBACK) <= set(KERNELS)


def _feed(op: str, inputs: list[np.ndarray], cuts: list[int]) -> np.ndarray:
    params = CASES[op][1]
    kernel = make_kernel(op, dict(params))
    out, pos = [], 0
    for size in [*cuts, len(inputs[0])]:
        stop = min(len(inputs[0]), pos + size)
        out.append(kernel.update(*(x[pos:stop] for x in inputs)))
        pos = stop
        if pos == len(inputs[0]):
            break
    return np.concatenate(out) if out else np.empty(0)


# exact small values, zeros and NaN often (they steer logic and windows), any float too
values = st.one_of(st.sampled_from([0.0, float("nan"), 1.0, -1.0, 0.5]),
                   st.floats(-3, 3, allow_nan=False))


@pytest.mark.parametrize("op", sorted(CASES))
@settings(max_examples=30, deadline=None)
@given(rows=st.lists(st.tuples(values, values, values), min_size=1, max_size=40),
       cuts=st.lists(st.integers(0, 7), max_size=12))
def test_any_split_gives_the_same_bits(op, rows, cuts):
    columns = np.array(rows).T  # three independent input streams
    inputs = list(columns[: CASES[op][0]])
    base = inputs[0]
    with np.errstate(all="ignore"):
        whole = _feed(op, inputs, [])
        split = _feed(op, inputs, cuts)
        ones = _feed(op, inputs, [1] * len(base))
    assert whole.shape == base.shape
    for got in (split, ones):
        np.testing.assert_array_equal(got, whole)
        assert np.array_equal(np.signbit(got), np.signbit(whole))
