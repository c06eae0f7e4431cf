"""The cold read over a history of many parts: the bars of a plain catalog read, blocks that
span parts, ranges cut inside parts, counts from the parts' statistics; and a catalog written
before parts through the provider."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import connectors.data.catalog as catalog_mod
from connectors.data.catalog import Catalog
from connectors.data.seamless import SeamlessDataProvider
from connectors.data.seamless.cold import ColdRead
from connectors.data.synthetic import generate_bars


@pytest.fixture
def parted(tmp_path, monkeypatch):
    """Row groups of 500 bars, so parts of 8,000: A is 4 parts, B 2."""
    monkeypatch.setattr(catalog_mod, "ROW_GROUP", 500)
    cat = Catalog(tmp_path / "catalog")
    bars = {"A": generate_bars(30_000, interval="1m", start="2024-01-01", seed=1),
            "B": generate_bars(12_345, interval="1m", start="2024-01-03", seed=2)}
    for s, b in bars.items():
        cat.write(s, "1m", b)
    assert [len(cat.parts(s, "1m")) for s in bars] == [4, 2]
    return cat, bars


def test_blocks_across_parts_are_the_bars_of_a_plain_read(parted):
    cat, bars = parted
    ts = bars["A"]["ts"]
    for lo, hi in ((None, None), (int(ts[7_999]), int(ts[8_000])), (int(ts[123]),
                                                                     int(ts[29_000]))):
        cold = ColdRead.open(cat, "A", "1m", lo, hi)
        assert cold is not None
        want = cat.read("A", "1m", lo, hi)
        got = [(a, b, arrays) for a, b, arrays in cold.blocks(lo, hi)]
        a0, b1, arrays = got[0][0], got[-1][1], got[-1][2]
        for c in want:
            assert arrays[c][a0:b1].tobytes() == want[c].tobytes()
        assert cold.count(lo if lo is not None else -(2**63),
                          hi if hi is not None else 2**63 - 1) == len(want["ts"])
        cold.close()


def test_the_provider_serves_many_parts_cold_then_warm(parted):
    cat, bars = parted
    ts = bars["A"]["ts"]
    lo, hi = int(ts[5_000]), int(ts[25_000])
    data = SeamlessDataProvider(Catalog(cat.root), cache_bytes=10**9)
    assert data.plan_rows(["A", "B"], "1m", lo, hi) == {
        s: int(((b["ts"] >= lo) & (b["ts"] <= hi)).sum()) for s, b in bars.items()}
    cold = [(s, {k: v.copy() for k, v in b.items()})
            for s, b in data.iter_batches(["A", "B"], "1m", lo, hi, batch_size=777)]
    assert data.stats["catalog_reads"] == 2 and data.stats["cache_hits"] == 0
    warm = list(data.iter_batches(["A", "B"], "1m", lo, hi, batch_size=777))
    assert data.stats["cache_hits"] >= 1  # A (B ends before hi: its coverage does not reach)
    for s, b in bars.items():
        keep = (b["ts"] >= lo) & (b["ts"] <= hi)
        for items in (cold, warm):
            mine = {c: np.concatenate([x[c] for t, x in items if t == s]) for c in b}
            for c in b:
                assert mine[c].tobytes() == b[c][keep].tobytes(), (s, c)


def test_a_catalog_written_before_parts_serves_through_the_provider(tmp_path):
    cat = Catalog(tmp_path)
    bars = generate_bars(20_000, interval="1m", seed=5)
    folder = cat.folder("A", "1m")
    folder.mkdir(parents=True)
    table = pa.table(bars).replace_schema_metadata(
        {b"qmtl.coverage": json.dumps([[int(bars["ts"][0]), int(bars["ts"][-1])]])})
    pq.write_table(table, folder / "bars.parquet", row_group_size=10_000,
                   use_dictionary=False, compression="lz4")
    for cache in (10**9, 0):  # cold read into the cache; streamed from the catalog
        data = SeamlessDataProvider(cat, cache_bytes=cache)
        got = list(data.iter_batches(["A"], "1m", batch_size=3_000))
        for c in bars:
            assert np.concatenate([b[c] for _, b in got]).tobytes() == bars[c].tobytes()
    assert (folder / "bars.parquet").is_file()  # reading does not rewrite it
