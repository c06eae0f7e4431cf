"""The alpha language's time-series operators against pandas, NaNs included, and the new
window kernels' batch invariance.

Each operator is compiled from its alpha text and run by the engine's per-symbol evaluator
(``ProgramState``); pandas' rolling windows with ``min_periods = d`` are the reference.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.lib.stride_tricks import sliding_window_view

from dataflows.graph import Program, ProgramState
from dataflows.kernels import make_kernel
from qmtl.alpha.functions import to_expr
from qmtl.alpha.syntax import AlphaSyntaxError, parse

N = 400


def _series(seed: int, level: float) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = level + np.cumsum(rng.normal(size=N)) if level else rng.normal(size=N)
    x[rng.choice(N, 12, replace=False)] = np.nan  # scattered gaps
    x[200:205] = np.nan  # and a run of them
    return x


def _run(text: str, close: np.ndarray, volume: np.ndarray, cuts: list[int] | None = None):
    expr = to_expr(parse(text), text)
    state = ProgramState(Program({"x": expr}))
    out, pos = [], 0
    for size in [*(cuts or []), N]:
        stop = min(N, pos + size)
        batch = {"close": close[pos:stop], "volume": volume[pos:stop]}
        out.append(state.evaluate(batch)["x"])
        pos = stop
        if pos == N:
            break
    return np.concatenate(out)


def _weighted(w: np.ndarray) -> float:
    weights = np.arange(1, len(w) + 1)
    return float(w @ weights / weights.sum())


REFERENCES = {
    "ts_mean(close, 7)": lambda x, y: x.rolling(7).mean(),
    "ts_sum(close, 7)": lambda x, y: x.rolling(7).sum(),
    "ts_std(close, 7)": lambda x, y: x.rolling(7).std(),
    "ts_std_dev(close, 7)": lambda x, y: x.rolling(7).std(),
    "ts_delta(close, 3)": lambda x, y: x - x.shift(3),
    "delay(close, 3)": lambda x, y: x.shift(3),
    "ts_min(close, 7)": lambda x, y: x.rolling(7).min(),
    "ts_max(close, 7)": lambda x, y: x.rolling(7).max(),
    "ts_rank(close, 7)": lambda x, y: (x.rolling(7).rank() - 1) / 6,
    "ts_zscore(close, 7)": lambda x, y: (x - x.rolling(7).mean()) / x.rolling(7).std(),
    "decay_linear(close, 7)": lambda x, y: x.rolling(7).apply(_weighted, raw=True),
    "ts_corr(close, volume, 9)": lambda x, y: x.rolling(9).corr(y),
    "ts_cov(close, volume, 9)": lambda x, y: x.rolling(9).cov(y),
    "returns": lambda x, y: x / x.shift(1) - 1,
}


def _windows(x: np.ndarray, d: int, fn) -> np.ndarray:
    """``fn`` of each full window, two-pass in numpy: an exact reference."""
    return np.r_[np.full(d - 1, np.nan), fn(sliding_window_view(x, d))]


def _cov(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    da = a - a.mean(axis=-1, keepdims=True)
    db = b - b.mean(axis=-1, keepdims=True)
    return (da * db).sum(axis=-1) / (a.shape[-1] - 1)


EXACT = {
    "ts_std(close, 7)": lambda x, y: _windows(x, 7, lambda w: w.std(axis=-1, ddof=1)),
    "ts_zscore(close, 7)": lambda x, y: (x - _windows(x, 7, lambda w: w.mean(axis=-1)))
    / _windows(x, 7, lambda w: w.std(axis=-1, ddof=1)),
    "ts_cov(close, volume, 9)": lambda x, y: np.r_[
        np.full(8, np.nan), _cov(sliding_window_view(x, 9), sliding_window_view(y, 9))],
    "ts_corr(close, volume, 9)": lambda x, y: np.r_[
        np.full(8, np.nan),
        _cov(sliding_window_view(x, 9), sliding_window_view(y, 9))
        / np.sqrt(_cov(sliding_window_view(x, 9), sliding_window_view(x, 9))
                  * _cov(sliding_window_view(y, 9), sliding_window_view(y, 9)))],
}
EXACT["ts_std_dev(close, 7)"] = EXACT["ts_std(close, 7)"]


@pytest.mark.parametrize("text", sorted(REFERENCES))
@pytest.mark.parametrize("level", [0.0, 100.0])
def test_each_operator_equals_pandas(text: str, level: float) -> None:
    """To 1e-12 on well-scaled data (around 0). Around 100, pandas' online window moments
    (running sums updated in and out) drift by a few 1e-12 after a run of NaNs, while the
    engine computes each window two-pass: there they are held to an exact per-window numpy
    reference to 1e-12, and to pandas to 1e-10."""
    close, volume = _series(1, level), _series(2, level)
    got = _run(text, close, volume)
    want = REFERENCES[text](pd.Series(close), pd.Series(volume)).to_numpy()
    assert np.array_equal(np.isnan(got), np.isnan(want)), text
    assert np.isnan(got).sum() < N / 2  # the comparison is about numbers, not only NaNs
    if level and text in EXACT:
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)
        np.testing.assert_allclose(got, EXACT[text](close, volume), rtol=1e-12, atol=1e-12)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_ts_rank_ties_share_their_average_rank() -> None:
    x = np.array([1.0, 2.0, 2.0, 2.0, 1.0, 3.0])
    got = make_kernel("ts_rank", {"n": 3}).update(x)
    # windows [1,2,2] -> 2 is tied top: ranks 2.5 of 3 -> 0.75; [2,2,2] -> 0.5;
    # [2,2,1] -> 1 is the lowest -> 0; [2,1,3] -> 3 is the highest -> 1
    assert got.tolist()[2:] == [0.75, 0.5, 0.0, 1.0]


def test_ts_corr_of_a_flat_window_is_nan_and_cov_is_zero() -> None:
    x = np.array([0.1, 0.1, 0.1, 0.1, 0.3])
    y = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    corr = make_kernel("ts_corr", {"n": 3}).update(x, y)
    cov = make_kernel("ts_cov", {"n": 3}).update(x, y)
    assert np.isnan(corr[:4]).all() and np.isclose(corr[4], 0.8660254037844386)
    assert np.allclose(cov[2:4], 0.0, atol=1e-15)


def test_ts_corr_of_a_series_with_itself_is_one() -> None:
    x = _series(3, 100.0)[:150]
    got = make_kernel("ts_corr", {"n": 10}).update(x, x)
    finite = np.isfinite(got)
    assert finite.sum() > 50 and np.allclose(got[finite], 1.0, atol=1e-12)


@pytest.mark.parametrize("op", ["ts_rank", "ts_cov", "ts_corr"])
def test_windows_of_one_are_refused(op: str) -> None:
    with pytest.raises(ValueError, match="at least 2"):
        make_kernel(op, {"n": 1})
    with pytest.raises(AlphaSyntaxError, match="at least 2"):
        args = "close, volume, 1" if op != "ts_rank" else "close, 1"
        to_expr(parse(f"{op}({args})"), "")


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(1, 60), max_size=20),
       text=st.sampled_from(["ts_rank(close, 5)", "ts_corr(close, volume, 6)",
                             "ts_cov(close, volume, 4)",
                             "ts_zscore(ts_corr(close, volume, 5), 4)",
                             "decay_linear(ts_rank(close - volume, 3), 4)"]))
def test_any_split_gives_the_same_bits(cuts: list[int], text: str) -> None:
    close, volume = _series(4, 50.0), _series(5, 0.0)
    whole = _run(text, close, volume)
    split = _run(text, close, volume, cuts)
    np.testing.assert_array_equal(split, whole)
    assert np.isfinite(whole).sum() > 100
