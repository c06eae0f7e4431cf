"""Streaming reads of the catalog: same bits as whole reads, bounded metadata per open file."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import connectors.data.catalog as catalog_mod
import connectors.data.parquet_footer as footer_mod
from connectors.data.catalog import Catalog, CatalogError
from connectors.data.parquet_footer import WINDOW, RowGroupFile, split_footer
from connectors.data.synthetic import generate_bars


@pytest.fixture
def long_catalog(tmp_path, monkeypatch):
    """Two symbols in row groups of 100 bars: far more row groups than a window holds."""
    monkeypatch.setattr(catalog_mod, "ROW_GROUP", 100)
    cat = Catalog(tmp_path)
    cat.write("A", "1m", generate_bars(5_050, interval="1m", seed=1))
    cat.write("B", "1m", generate_bars(4_321, interval="1m", seed=2),
              covered=[(0, 10**9)])  # key-value metadata after the row groups
    return cat


def test_stream_is_bit_identical_to_a_whole_read(long_catalog):
    cat = long_catalog
    assert pq.ParquetFile(cat.path("A", "1m")).metadata.num_row_groups == 51 > WINDOW
    whole = {s: cat.read(s, "1m") for s in ("A", "B")}
    for size in (1, 37, 100, 10_000):
        got = {"A": [], "B": []}
        for s, batch in cat.iter_batches(["A", "B"], "1m", batch_size=size):
            assert len(batch["ts"]) <= size
            got[s].append(batch)
        for s in ("A", "B"):
            for c in whole[s]:
                joined = np.concatenate([b[c] for b in got[s]])
                assert joined.dtype == whole[s][c].dtype
                assert joined.tobytes() == whole[s][c].tobytes(), (s, c, size)


def test_stream_of_a_range_reads_the_same_bars_as_read(long_catalog):
    cat = long_catalog
    ts = cat.read("A", "1m")["ts"]
    start, end = int(ts[1234]), int(ts[3456])
    want = cat.read("A", "1m", start=start, end=end)
    got = [b for _, b in cat.iter_batches(["A"], "1m", start=start, end=end, batch_size=500)]
    for c in want:
        assert np.concatenate([b[c] for b in got]).tobytes() == want[c].tobytes()


def test_a_long_file_holds_the_metadata_of_one_window_at_most(long_catalog):
    path = long_catalog.path("A", "1m")
    full = pq.ParquetFile(path)
    with RowGroupFile(path) as f:
        assert f.num_row_groups == full.metadata.num_row_groups == 51
        assert f.held_row_groups == 0  # nothing parsed is kept until a read
        for i in range(f.num_row_groups):
            assert f.read(i).equals(full.read_row_group(i))
            assert 1 <= f.held_row_groups <= WINDOW
        # what is kept per row group does not depend on its metadata's size: 2 offsets
        assert f._spans.shape == (51, 2)
        assert f.metadata().num_row_groups == 51


def test_the_window_bound_is_what_the_stream_uses(long_catalog, monkeypatch):
    held = []
    real_read = RowGroupFile.read

    def spy(self, i, columns=None):
        out = real_read(self, i, columns)
        held.append(self.held_row_groups)
        return out

    monkeypatch.setattr(footer_mod, "WINDOW", 4)
    monkeypatch.setattr(RowGroupFile, "read", spy)
    n = sum(len(b["ts"]) for _, b in long_catalog.iter_batches(["A", "B"], "1m"))
    assert n == 5_050 + 4_321
    assert held and max(held) == 4


def test_split_footer_finds_every_row_group_entry(tmp_path):
    path = tmp_path / "x.parquet"
    table = pa.table({"x": np.arange(1000), "s": [str(i) for i in range(1000)]})
    pq.write_table(table, path, row_group_size=7, metadata_collector=None)
    raw = path.read_bytes()
    n = int.from_bytes(raw[-8:-4], "little")
    head, spans, tail = split_footer(raw[-8 - n : -8])
    assert len(spans) == 143 and (spans[1:, 0] == spans[:-1, 1]).all()
    assert len(head) + (spans[-1, 1] - spans[0, 0]) + len(tail) < n  # minus the list header
    with RowGroupFile(path) as f:
        assert pa.concat_tables(f.read(i) for i in range(143)).equals(table)


def test_a_corrupt_file_is_a_catalog_error(long_catalog):
    path = long_catalog.path("A", "1m")
    path.write_bytes(path.read_bytes()[:-3] + b"XYZ")
    with pytest.raises(CatalogError, match="corrupt catalog file"):
        list(long_catalog.iter_batches(["A"], "1m"))


def test_coverage_is_remembered_until_the_file_changes(tmp_path, monkeypatch):
    cat = Catalog(tmp_path)
    bars = generate_bars(300, interval="1m", seed=3)
    cat.write("A", "1m", {c: v[:200] for c, v in bars.items()})
    first = cat.coverage("A", "1m")
    assert first[2] == 200
    calls = []
    real = cat._metadata
    monkeypatch.setattr(cat, "_metadata", lambda *a: calls.append(a) or real(*a))
    assert cat.coverage("A", "1m") == first and calls == []  # remembered
    spans = cat.covered("A", "1m")
    spans.add(0, 1)  # a caller's copy: the remembered one is not changed
    assert cat.covered("A", "1m") != spans
    cat.write("A", "1m", bars)  # a new file replaces the old one: read again
    assert cat.coverage("A", "1m") == (int(bars["ts"][0]), int(bars["ts"][-1]), 300)
    assert calls


def test_a_footer_the_skimmer_cannot_split_is_read_whole(long_catalog, monkeypatch):
    def refuse(footer):
        raise footer_mod.FooterError("not this one")

    monkeypatch.setattr(footer_mod, "split_footer", refuse)
    f = RowGroupFile(long_catalog.path("A", "1m"))
    try:
        assert f.num_row_groups == 51 and f.held_row_groups == 51  # Arrow's own way
        assert f.read(50).num_rows == 50 and f.metadata().num_row_groups == 51
    finally:
        f.close()
    whole = long_catalog.read("A", "1m")
    got = [b for _, b in long_catalog.iter_batches(["A"], "1m", batch_size=1_000)]
    assert np.array_equal(np.concatenate([b["close"] for b in got]), whole["close"])


def test_a_damaged_footer_is_a_catalog_error_naming_the_file(long_catalog):
    path = long_catalog.path("A", "1m")
    raw = bytearray(path.read_bytes())
    length = int.from_bytes(raw[-8:-4], "little")
    start = len(raw) - 8 - length
    raw[start:start + 64] = b"\xff" * 64  # the footer's first bytes: not Thrift any more
    path.write_bytes(bytes(raw))
    with pytest.raises(CatalogError, match=f"corrupt catalog file {path}"):
        list(long_catalog.iter_batches(["A"], "1m"))
