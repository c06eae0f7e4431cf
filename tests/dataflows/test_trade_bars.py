"""Trades into bars (dataflows.trade_bars): the bars made live from trades arriving in any
order within the allowed lateness, in any batches, equal the catalog's bars of the same
trades and pandas' OHLC resampling of them; repeats, late trades and empty intervals are
counted and handled by the documented rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.resample import Resampler, resample
from dataflows.trade_bars import TradeBars, trades_to_bars

S = 10**9
M = 60 * S
COLS = ("ts", "open", "high", "low", "close", "volume")


def pandas_bars(ts, price, size, ids, step: int) -> dict[str, np.ndarray]:
    """The independent reference: pandas' right-closed, right-labelled OHLC resampling of
    the trades in their canonical order (time, id, price, size), repeats of an id dropped."""
    df = pd.DataFrame({"ts": ts, "id": ids, "price": price, "size": size})
    named = df[df.id != ""].drop_duplicates("id")
    df = pd.concat([named, df[df.id == ""]]).sort_values(
        ["ts", "id", "price", "size"], kind="stable"
    )
    df.index = pd.to_datetime(df.ts, unit="ns")
    rule = f"{step // S}s"
    ohlc = df.price.resample(rule, closed="right", label="right").ohlc()
    vol = df["size"].resample(rule, closed="right", label="right").sum()
    keep = ohlc.open.notna()
    out = {"ts": ohlc.index[keep].as_unit("ns").asi8}
    for c in ("open", "high", "low", "close"):
        out[c] = ohlc[c][keep].to_numpy()
    out["volume"] = vol[keep].to_numpy()
    return out


def live(trades, step, lateness, arrival, cuts, **kw):
    """Feed the trades in ``arrival`` order, in batches cut at ``cuts``; then the end."""
    tb = TradeBars(step, lateness, **kw)
    parts = []
    order = np.asarray(arrival)
    for chunk in np.split(order, sorted(set(cuts))):
        if len(chunk):
            parts.append(tb.add({k: np.asarray(v)[chunk] for k, v in trades.items()}))
    last_end = -(-int(np.max(trades["ts"])) // step) * step  # the last trade's bar
    parts.append(tb.advance(last_end + lateness + 1))
    return {c: np.concatenate([p[c] for p in parts]) for c in COLS}, tb


@st.composite
def trade_sets(draw):
    n = draw(st.integers(1, 60))
    ts = draw(st.lists(st.integers(0, 10 * M), min_size=n, max_size=n))
    # whole-second times often fall on a bar's end, and ties share a time
    ts = [t // S * S if draw(st.booleans()) else t for t in ts]
    price = draw(st.lists(st.sampled_from([1.0, 1.5, 2.0, 2.25, 3.0]), min_size=n, max_size=n))
    size = draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 4.0]), min_size=n, max_size=n))
    ids = [f"t{i}" for i in range(n)]
    dups = draw(st.lists(st.integers(0, n - 1), max_size=5))  # repeated deliveries
    ts, price, size, ids = ([*a, *(a[i] for i in dups)] for a in (ts, price, size, ids))
    lateness = draw(st.sampled_from([0, 5 * S, 45 * S, 3 * M]))
    # arrival within the lateness: sorted by time plus a delay of at most the lateness
    delay = draw(st.lists(st.integers(0, lateness), min_size=len(ts), max_size=len(ts)))
    arrival = np.lexsort((np.arange(len(ts)), np.array(ts) + np.array(delay)))
    cuts = draw(st.lists(st.integers(0, len(ts)), max_size=6))
    trades = {
        "ts": np.array(ts, dtype=np.int64),
        "price": np.array(price),
        "size": np.array(size),
        "id": np.array(ids, dtype=object),
    }
    return trades, lateness, arrival, cuts, len(dups)


@settings(max_examples=150, deadline=None)
@given(trade_sets(), st.sampled_from([M, 5 * M]))
def test_live_bars_equal_the_catalog_in_any_arrival_order_within_the_lateness(case, step):
    trades, lateness, arrival, cuts, n_dups = case
    got, tb = live(trades, step, lateness, arrival, cuts)
    want = trades_to_bars(trades, step)
    ref = pandas_bars(trades["ts"], trades["price"], trades["size"], trades["id"], step)
    for c in COLS:
        assert np.array_equal(got[c], want[c]), c
        assert np.array_equal(want[c], ref[c]), c
    assert tb.counts["duplicates"] == n_dups  # every repeat of an id counted once
    assert tb.counts["late_dropped"] == tb.counts["late_folded"] == 0


def test_a_late_trade_is_counted_and_dropped_or_folded_never_silently():
    trades = {
        "ts": np.array([10, 50, 70, 65, 130]) * S,
        "price": [1.0, 2.0, 3.0, 9.0, 4.0],
        "size": [1.0, 1.0, 1.0, 5.0, 1.0],
    }
    order = np.arange(5)
    dropped, tb = live(trades, M, 0, order, [1, 2, 3, 4])
    # 65 s arrives after 70 s closed nothing yet (watermark 70 s: 0:01 closed); its own bar
    # 0:02 is still open: not late. Make one late: 50 s after 70 s
    assert tb.counts["late_dropped"] == 0
    late = {
        "ts": np.array([10, 70, 50, 130]) * S,
        "price": [1.0, 3.0, 9.0, 4.0],
        "size": [1.0, 1.0, 5.0, 1.0],
    }
    dropped, tb = live(late, M, 0, np.arange(4), [1, 2, 3])
    assert tb.counts["late_dropped"] == 1
    assert dropped["volume"].tolist() == [1.0, 1.0, 1.0]  # 0:01, 0:02, 0:03: 50 s left out
    folded, tf = live(late, M, 0, np.arange(4), [1, 2, 3], late="fold")
    assert tf.counts["late_folded"] == 1
    # folded into 0:02 as if at its start: its open, 6 of volume
    assert folded["open"].tolist() == [1.0, 9.0, 4.0]
    assert folded["volume"].tolist() == [1.0, 6.0, 1.0]
    assert folded["high"].tolist() == [1.0, 9.0, 4.0]


def test_an_empty_interval_is_skipped_or_carries_the_close_with_volume_0():
    trades = {"ts": np.array([30, 250, 260]) * S, "price": [2.0, 3.0, 4.0], "size": [1.0, 2.0, 1.0]}
    skip, _ = live(trades, M, 0, np.arange(3), [1, 2])
    assert (skip["ts"] // M).tolist() == [1, 5]
    carry, tb = live(trades, M, 0, np.arange(3), [1, 2], empty="carry")
    assert (carry["ts"] // M).tolist() == [1, 2, 3, 4, 5]
    assert carry["close"].tolist() == [2.0, 2.0, 2.0, 2.0, 4.0]
    assert carry["open"].tolist() == [2.0, 2.0, 2.0, 2.0, 3.0]
    assert carry["volume"].tolist() == [1.0, 0.0, 0.0, 0.0, 3.0]
    assert tb.counts["empty_bars"] == 3
    want = trades_to_bars(trades, M, empty="carry")
    assert all(np.array_equal(carry[c], want[c]) for c in COLS)


def test_a_snapshot_mid_stream_resumes_to_the_same_bars():
    rng = np.random.default_rng(1)
    ts = np.sort(rng.integers(0, 30 * M, 500))
    trades = {
        "ts": ts,
        "price": rng.uniform(1, 2, 500),
        "size": rng.uniform(0, 1, 500),
        "id": np.array([f"x{i}" for i in range(500)], dtype=object),
    }
    whole, _ = live(trades, M, 10 * S, np.arange(500), [100, 200, 300])
    a = TradeBars(M, 10 * S)
    first = a.add({k: v[:250] for k, v in trades.items()})
    b = TradeBars(M, 10 * S)
    b.restore(a.state())
    rest = b.add({k: v[250:] for k, v in trades.items()})
    tail = b.advance(int(ts[-1]) + 2 * M)
    for c in COLS:
        assert np.array_equal(np.concatenate([first[c], rest[c], tail[c]]), whole[c])


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="empty must be one of skip, carry"):
        TradeBars(M, empty="zero")
    with pytest.raises(ValueError, match="lateness must be >= 0"):
        TradeBars(M, -1)
    with pytest.raises(ValueError, match="the same length"):
        TradeBars(M).add({"ts": [1, 2], "price": [1.0], "size": [1.0]})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=8), st.integers(0, 3))
def test_live_resampling_of_1m_bars_equals_the_catalog(batches, seed):
    """A 1m bar feed, in any batches down to one bar, resampled to 1h bars in the flow,
    equals the catalog's resampling of the same bars."""
    rng = np.random.default_rng(seed)
    n = sum(batches)
    ts = np.cumsum(rng.integers(1, 30, n)) * M  # gaps too
    close = rng.uniform(1, 2, n)
    bars = {
        "ts": ts,
        "open": close,
        "high": close + 0.1,
        "low": close - 0.1,
        "close": close,
        "volume": rng.uniform(0, 5, n),
    }
    r = Resampler("1m", "1h")
    parts, at = [], 0
    for k in batches:
        parts.append(r.update({c: v[at : at + k] for c, v in bars.items()}))
        at += k
    got = {c: np.concatenate([p[c] for p in parts]) for c in COLS}
    want = resample(bars, "1m", "1h")
    assert all(np.array_equal(got[c], want[c]) for c in COLS)


def test_ids_are_remembered_for_a_while_then_a_repeat_is_a_late_trade():
    tb = TradeBars(M, 0, remember=3 * M)
    tb.add({"ts": [30 * S], "price": [1.0], "size": [1.0], "id": ["a"]})
    tb.add({"ts": [90 * S], "price": [1.0], "size": [1.0], "id": ["b"]})
    tb.add({"ts": [95 * S], "price": [1.0], "size": [1.0], "id": ["a"]})  # a repeat
    assert tb.counts["duplicates"] == 1
    tb.add({"ts": [5 * M], "price": [1.0], "size": [1.0], "id": ["c"]})  # 0:01 far behind
    assert "a" not in tb.state()["ids"] and "b" in tb.state()["ids"]
    tb.add({"ts": [10 * S], "price": [1.0], "size": [1.0], "id": ["a"]})  # forgotten: late
    assert tb.counts["duplicates"] == 1 and tb.counts["late_dropped"] == 1
