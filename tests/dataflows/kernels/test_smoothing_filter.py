"""The EMA's filter call (scipy's filter without the public wrapper) gives lfilter's bits."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.signal import lfilter

from dataflows.kernels.smoothing import _filter


@settings(max_examples=100, deadline=None)
@given(
    xs=st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=200),
    alpha=st.floats(1e-4, 1.0),
    z=st.floats(-1e6, 1e6),
)
def test_filter_is_lfilter(xs, alpha, z):
    x = np.array(xs)
    y1, z1 = lfilter([alpha], [1.0, alpha - 1.0], x, zi=np.array([z]))
    y2, z2 = _filter(alpha, x, np.array([z]))
    np.testing.assert_array_equal(y2, y1)
    np.testing.assert_array_equal(z2, z1)
