"""A run records what it saw: same bars, same fingerprint; any changed bar, a new one."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.synthetic import generate_bars
from qmtl import Strategy, backtest

DATA = {"A": generate_bars(300, seed=1), "B": generate_bars(300, seed=2)}


class Both(Strategy):
    symbols = ["A", "B"]

    def signal(self, bars):
        return bars.close.sma(5) > bars.close.sma(20)


BASE = backtest(Both, data=DATA)


@settings(max_examples=10, deadline=None)
@given(st.integers(1, 400))
def test_same_bars_same_fingerprint_for_any_batching(size):
    assert (
        backtest(Both, data=DATA, batch_size=size).data["fingerprint"] == BASE.data["fingerprint"]
    )


@settings(max_examples=10, deadline=None)
@given(
    st.sampled_from(["A", "B"]),
    st.integers(0, 299),
    st.sampled_from(["open", "high", "close", "volume"]),
)
def test_any_changed_bar_changes_it(symbol, row, column):
    changed = {s: {k: v.copy() for k, v in b.items()} for s, b in DATA.items()}
    changed[symbol][column][row] *= 1.0001
    changed[symbol]["high"][row] = max(
        changed[symbol]["high"][row], changed[symbol]["close"][row], changed[symbol]["open"][row]
    )
    other = backtest(Both, data=changed)
    assert other.data["fingerprint"] != BASE.data["fingerprint"]
    assert other.data["symbols"][symbol]["sha256"] != BASE.data["symbols"][symbol]["sha256"]
    untouched = "B" if symbol == "A" else "A"
    assert other.data["symbols"][untouched] == BASE.data["symbols"][untouched]


def test_metrics_json_records_the_data(tmp_path):
    doc = json.loads((BASE.write(tmp_path) / "metrics.json").read_text())
    assert doc["data"]["fingerprint"] == BASE.data["fingerprint"]
    a = doc["data"]["symbols"]["A"]
    assert (a["first"], a["last"], a["rows"]) == (
        int(DATA["A"]["ts"][0]),
        int(DATA["A"]["ts"][-1]),
        300,
    )
    assert doc["data"]["as_of"] > 0


def test_digest_is_the_sha256_of_the_rows_however_batched():
    """The digest is the SHA-256 of the rows' bytes in order, for any batching."""
    import hashlib

    import numpy as np

    from qmtl.fingerprint import BarHasher

    bars = generate_bars(20_000, seed=5)
    rows = np.empty(20_000, dtype=[("ts", "<i8")] + [(c, "<f8") for c in
                                                     ("open", "high", "low", "close", "volume")])
    for c in rows.dtype.names:
        rows[c] = bars[c]
    want = hashlib.sha256(rows.tobytes()).hexdigest()
    mixed = BarHasher()
    for lo, hi in ((0, 5_000), (5_000, 5_001), (5_001, 5_010), (5_010, 20_000)):
        mixed.update({k: v[lo:hi] for k, v in bars.items()})
    assert mixed.summary()["sha256"] == want
    assert BarHasher().update(bars).summary() == mixed.summary()
