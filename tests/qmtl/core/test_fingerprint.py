"""A run records what it saw: same bars, same fingerprint; any changed bar, a new one."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.data.synthetic import generate_bars
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
    assert other.data["symbols"][symbol]["xxh3_128"] != BASE.data["symbols"][symbol]["xxh3_128"]
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


def test_the_final_metrics_update_carries_the_fingerprint():
    """Updates stream during the replay; the last one, posted once every bar was seen, carries
    the dataset fingerprint, the same as metrics.json; earlier ones carry none."""
    from qmtl.submit import LocalWorld, _run

    class Recording(LocalWorld):
        def __init__(self):
            super().__init__("{}")
            self.sent = []

        def post(self, updates):
            self.sent += updates
            super().post(updates)

    world = Recording()
    _run(Both, "w", world, strategy_id=None, returns=None, auto_returns=True, dry_run=True,
         options={"data": DATA, "metrics_every": 50, "batch_size": 50})
    assert len(world.sent) == 6  # 300 bars, a snapshot every 50
    assert [u.fingerprint for u in world.sent[:-1]] == [None] * 5
    assert world.sent[-1].fingerprint == BASE.data["fingerprint"]
    assert [u.seq for u in world.sent] == list(range(1, 7))


def test_served_from_a_provider_the_fingerprint_is_the_same(tmp_path):
    """Same bars through the catalog, the cache or an origin backfill: same fingerprint."""
    from connectors.data.catalog import Catalog
    from connectors.data.seamless import SeamlessDataProvider
    from tests.connectors.conftest import CountingOrigin, write_origin_file

    catalog = Catalog(tmp_path / "c")
    catalog.write("A", "1d", {k: v[:100] for k, v in DATA["A"].items()})
    catalog.write("B", "1d", DATA["B"])
    write_origin_file(tmp_path / "o", "A", "1d", DATA["A"])
    data = SeamlessDataProvider(catalog, origin=CountingOrigin(tmp_path / "o"))
    span = (int(DATA["A"]["ts"][0]), int(DATA["A"]["ts"][-1]))
    first = backtest(Both, data=data, start=span[0], end=span[1])
    second = backtest(Both, data=data, start=span[0], end=span[1])  # cache
    cold = backtest(Both, data=tmp_path / "c", start=span[0], end=span[1])  # catalog
    assert first.data["fingerprint"] == second.data["fingerprint"] == cold.data["fingerprint"]
    assert first.data["fingerprint"] == BASE.data["fingerprint"]
    assert [f["rows"] for f in first.data["fetched"]] == [200, 0]  # the range, its look-back
    assert second.data["fetched"] == [] and first.data["requested"]["start"] == span[0]


def test_digest_is_the_column_hashes_however_batched():
    """The digest is XXH3-128 of each column's whole byte stream (computed here in one piece
    by the xxhash library), for any batching of the bars."""
    import numpy as np
    import xxhash

    from qmtl.core.fingerprint import BarHasher

    bars = generate_bars(20_000, seed=5)
    columns = ("ts", "open", "high", "low", "close", "volume")
    parts = b"".join(
        xxhash.xxh3_128(np.asarray(bars[c], dtype="<i8" if c == "ts" else "<f8").tobytes())
        .digest()
        for c in columns
    )
    want = xxhash.xxh3_128(parts).hexdigest()
    mixed = BarHasher()
    for lo, hi in ((0, 5_000), (5_000, 5_001), (5_001, 5_010), (5_010, 20_000)):
        mixed.update({k: v[lo:hi] for k, v in bars.items()})
    assert mixed.summary()["xxh3_128"] == want
    assert BarHasher().update(bars).summary() == mixed.summary()
