"""Resampling against a pandas ``resample`` oracle, and batch invariance (hypothesis)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.resample import Resampler, resample
from qmtl.core.contracts import BAR_COLUMNS
from qmtl.core.intervals import interval_ns

MIN = 60 * 10**9


def minute_bars(n: int, seed: int, holes: float = 0.0, start_min: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    ts = (start_min + np.arange(n, dtype=np.int64)) * MIN + 1_699_920_000 * 10**9  # a UTC midnight
    keep = rng.random(n) >= holes
    ts = ts[keep]
    m = len(ts)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 1e-3, m)))
    open_ = close * np.exp(rng.normal(0, 5e-4, m))
    high = np.maximum(open_, close) * (1 + rng.random(m) * 1e-3)
    low = np.minimum(open_, close) * (1 - rng.random(m) * 1e-3)
    volume = rng.random(m) * 1000  # not integers: the sums must still agree
    return {"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume}


def pandas_oracle(bars: dict, dst: str, now: int | None) -> pd.DataFrame:
    """Right-closed, right-labelled buckets; empty buckets dropped; the last kept only when
    closed (a source bar at its end, or ``now`` past it)."""
    df = pd.DataFrame({c: bars[c] for c in BAR_COLUMNS if c != "ts"},
                      index=pd.to_datetime(bars["ts"], unit="ns", utc=True))
    rule = {"5m": "5min", "15m": "15min", "1h": "1h", "4h": "4h", "1d": "1D"}[dst]
    out = df.resample(rule, closed="right", label="right").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    ).dropna(subset=["open"])
    ts = out.index.as_unit("ns").asi8
    if len(ts):
        last_closed = bars["ts"][-1] >= ts[-1] or (now is not None and now >= ts[-1])
        if not last_closed:
            out, ts = out.iloc[:-1], ts[:-1]
    return out.assign(ts=ts)


@pytest.mark.parametrize("dst", ["5m", "15m", "1h", "4h", "1d"])
@pytest.mark.parametrize("holes", [0.0, 0.3])
def test_equals_pandas_resample(dst, holes):
    bars = minute_bars(4000, seed=len(dst), holes=holes, start_min=7)
    for now in (None, int(bars["ts"][-1]) + interval_ns(dst)):
        got = resample(bars, "1m", dst, now=now)
        want = pandas_oracle(bars, dst, now)
        assert got["ts"].tolist() == want["ts"].tolist()
        for c in ("open", "high", "low", "close"):
            np.testing.assert_array_equal(got[c], want[c].to_numpy())
        np.testing.assert_allclose(got["volume"], want["volume"].to_numpy(), rtol=1e-12)


def test_buckets_are_stamped_at_close_and_partial_last_bucket_waits():
    bars = minute_bars(90, seed=1, start_min=1)  # 01..90 minutes past an hour boundary
    first = int(bars["ts"][0]) - MIN
    got = resample(bars, "1m", "1h")
    assert [int(t - first) // MIN for t in got["ts"]] == [60]  # minutes 61..90 still open
    r = Resampler("1m", "1h")
    r.update(bars)
    assert len(r.advance(first + 119 * MIN)["ts"]) == 0
    tail = r.advance(first + 120 * MIN)
    assert tail["ts"].tolist() == [first + 120 * MIN]
    assert tail["open"][0] == bars["open"][60] and tail["close"][0] == bars["close"][-1]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.integers(1, 300), min_size=1, max_size=30),
    st.sampled_from(["5m", "1h", "4h"]),
    st.floats(0.0, 0.6),
    st.integers(0, 10_000),
)
def test_any_split_gives_bit_identical_bars(cuts, dst, holes, seed):
    bars = minute_bars(1500, seed=seed, holes=holes)
    whole = resample(bars, "1m", dst)
    r = Resampler("1m", dst)
    parts, lo, i = [], 0, 0
    n = len(bars["ts"])
    while lo < n:
        hi = min(n, lo + cuts[i % len(cuts)])
        parts.append(r.update({k: v[lo:hi] for k, v in bars.items()}))
        lo, i = hi, i + 1
    split = {c: np.concatenate([p[c] for p in parts]) for c in BAR_COLUMNS}
    for c in BAR_COLUMNS:
        assert split[c].tobytes() == whole[c].tobytes(), c


def test_one_bar_at_a_time_is_live_shaped():
    bars = minute_bars(300, seed=3, holes=0.2)
    r = Resampler("1m", "15m")
    got = [r.update({k: v[i:i + 1] for k, v in bars.items()}) for i in range(len(bars["ts"]))]
    stamps = np.concatenate([g["ts"] for g in got])
    assert stamps.tolist() == resample(bars, "1m", "15m")["ts"].tolist()
    # a bucket appears exactly when its last minute or a later bar arrives, never before
    for i, g in enumerate(got):
        for t in g["ts"]:
            assert bars["ts"][i] >= t
            assert i == 0 or bars["ts"][i - 1] < t


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="not a whole multiple"):
        Resampler("15m", "1h").__class__("1h", "15m")
    bars = minute_bars(10, seed=0)
    r = Resampler("1m", "5m")
    r.update(bars)
    with pytest.raises(ValueError, match="strictly increasing"):
        r.update({k: v[:2] for k, v in bars.items()})
