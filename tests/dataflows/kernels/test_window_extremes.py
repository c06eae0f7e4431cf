"""Rolling min and max (computed by doubling spans) against pandas and against the plain
per-window reduction they replaced: the same values bit for bit, NaN windows included."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from dataflows.kernels import make_kernel

values = st.one_of(
    st.sampled_from([0.0, -0.0, float("nan"), 1.0, -1.0, 2.5]),
    st.floats(-1e6, 1e6, allow_nan=False),
)


@settings(max_examples=150, deadline=None)
@given(
    xs=st.lists(values, min_size=1, max_size=90),
    n=st.integers(1, 40),
    op=st.sampled_from(["rolling_min", "rolling_max"]),
)
def test_equals_pandas_and_the_per_window_reduction(xs, n, op):
    x = np.array(xs)
    got = make_kernel(op, {"n": n}).update(x)
    roll = pd.Series(x).rolling(n, min_periods=n)
    want = (roll.min() if op == "rolling_min" else roll.max()).to_numpy()
    np.testing.assert_array_equal(got, want)
    ext = np.concatenate([np.full(n - 1, np.nan), x])
    windows = sliding_window_view(ext, n)
    plain = windows.min(axis=-1) if op == "rolling_min" else windows.max(axis=-1)
    np.testing.assert_array_equal(got, plain)


def test_a_window_of_one_is_the_input_and_not_the_same_array():
    x = np.array([3.0, np.nan, 1.0])
    got = make_kernel("rolling_max", {"n": 1}).update(x)
    np.testing.assert_array_equal(got, x)
    got[0] = 9.0
    assert x[0] == 3.0
