"""The cross-sectional rank's fast path (one sort of packed keys) against its exact path
(argsort, ties averaged) and pandas' ``rank(axis=1)``: the same bits, including rows with
ties, NaN, infinities, signed zeros and values one ulp apart (those rows go the exact way)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.kernels.cross_section import _rank_exact, cs_rank

cells = st.one_of(
    st.sampled_from(
        [
            0.0,
            -0.0,
            1.0,
            -1.0,
            float("nan"),
            float("inf"),
            -float("inf"),
            1.0 + 2**-52,
            1.0 - 2**-53,
            5e-324,
        ]
    ),
    st.floats(allow_nan=False, allow_infinity=False),
)


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 6).flatmap(
        lambda cols: st.lists(st.lists(cells, min_size=cols, max_size=cols), min_size=1, max_size=8)
    )
)
def test_fast_path_is_the_exact_path(rows):
    x = np.array(rows, dtype=np.float64)
    got, want = cs_rank(x), _rank_exact(x)
    np.testing.assert_array_equal(got, want)
    assert np.array_equal(np.signbit(got), np.signbit(want))


def test_wide_random_rows_equal_pandas():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((300, 700))
    x[rng.random(x.shape) < 0.05] = np.nan
    x[:, 3] = x[:, 4]  # a tie in every row: all exact
    x[::2, 3] = 0.5  # half the rows without it: fast
    x[7] = np.nan
    x[9, 1:] = np.nan  # one finite value
    want = pd.DataFrame(x).rank(axis=1, method="average")
    want = want.sub(1.0).div(pd.DataFrame(x).count(axis=1).sub(1.0), axis=0)
    want[pd.DataFrame(x).count(axis=1) == 1] = 0.5
    want[pd.DataFrame(x).isna()] = np.nan
    got = cs_rank(x)
    np.testing.assert_allclose(got, want.to_numpy(), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(got, _rank_exact(x))
