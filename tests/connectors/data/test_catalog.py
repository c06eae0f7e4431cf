"""Streaming reads of the catalog: same bits as whole reads, one bounded part open at a time;
the layout of parts, its commits, and catalogs written before parts."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import connectors.data.catalog as catalog_mod
import connectors.data.parts as parts_mod
from connectors.data.catalog import PART_GROUPS, Catalog, CatalogError
from connectors.data.synthetic import generate_bars


@pytest.fixture
def long_catalog(tmp_path, monkeypatch):
    """Two symbols in row groups of 100 bars: far more row groups than a part holds."""
    monkeypatch.setattr(catalog_mod, "ROW_GROUP", 100)
    cat = Catalog(tmp_path)
    cat.write("A", "1m", generate_bars(5_050, interval="1m", seed=1))
    cat.write("B", "1m", generate_bars(4_321, interval="1m", seed=2),
              covered=[(0, 10**9)])  # key-value metadata after the row groups
    return cat


def test_stream_is_bit_identical_to_a_whole_read(long_catalog):
    cat = long_catalog
    assert len(cat.parts("A", "1m")) == 4  # 5,050 bars in parts of 16 x 100
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




def test_a_damaged_footer_is_a_catalog_error_naming_the_file(long_catalog):
    path = long_catalog.path("A", "1m")
    raw = bytearray(path.read_bytes())
    length = int.from_bytes(raw[-8:-4], "little")
    start = len(raw) - 8 - length
    raw[start:start + 64] = b"\xff" * 64  # the footer's first bytes: not Thrift any more
    path.write_bytes(bytes(raw))
    with pytest.raises(CatalogError, match=f"corrupt catalog file {path}"):
        list(long_catalog.iter_batches(["A"], "1m"))


def test_a_stream_holds_one_bounded_part_open_per_symbol(long_catalog, monkeypatch):
    opened, open_now, most = [], set(), [0]
    real = catalog_mod.pq.ParquetFile

    class Spy(real):
        def __init__(self, path, **kw):
            super().__init__(path, **kw)
            opened.append(self.metadata.num_row_groups)
            open_now.add(id(self))
            most[0] = max(most[0], len(open_now))

        def close(self, *a, **kw):
            open_now.discard(id(self))
            return super().close(*a, **kw)

    monkeypatch.setattr(catalog_mod.pq, "ParquetFile", Spy)
    n = sum(len(b["ts"]) for _, b in long_catalog.iter_batches(["A", "B"], "1m", batch_size=50))
    assert n == 5_050 + 4_321
    assert len(opened) == 4 + 3  # every part once
    assert max(opened) == PART_GROUPS  # metadata held: one part's row groups, not 51
    assert most[0] == 2  # one open part per symbol
    assert not open_now  # each closed when done


def legacy_write(cat: Catalog, symbol: str, interval: str, bars: dict, covered=None) -> None:
    """What the catalog wrote before parts: one bars.parquet, coverage in its metadata."""
    import json

    table = pa.table({c: bars[c] for c in ("ts", "open", "high", "low", "close", "volume")})
    if covered is not None:
        table = table.replace_schema_metadata({b"qmtl.coverage": json.dumps(covered)})
    folder = cat.folder(symbol, interval)
    folder.mkdir(parents=True)
    pq.write_table(table, folder / "bars.parquet", row_group_size=10_000,
                   use_dictionary=False, compression="lz4")


def test_a_catalog_written_before_parts_is_read_then_upgraded_on_write(tmp_path):
    cat = Catalog(tmp_path)
    more = generate_bars(30_000, interval="1m", seed=4)
    bars = {c: v[:25_000] for c, v in more.items()}
    ts = bars["ts"]
    legacy_write(cat, "A", "1m", bars, covered=[[int(ts[0]), int(ts[-1]) + 600 * 10**9]])
    legacy_write(cat, "B", "1m", bars)  # no coverage recorded: first to last bar
    assert cat.symbols("1m") == ["A", "B"] and cat.intervals("A") == ["1m"]
    assert cat.path("A", "1m") == cat.folder("A", "1m") / "bars.parquet"
    assert cat.coverage("A", "1m") == (int(ts[0]), int(ts[-1]), 25_000)
    assert cat.covered("A", "1m").ranges == [(int(ts[0]), int(ts[-1]) + 600 * 10**9)]
    assert cat.covered("B", "1m").ranges == [(int(ts[0]), int(ts[-1]))]
    whole = cat.read("A", "1m")
    for c in whole:
        assert whole[c].tobytes() == bars[c].tobytes()
    got = [b for _, b in cat.iter_batches(["A"], "1m", start=int(ts[7]), batch_size=999)]
    assert np.concatenate([b["close"] for b in got]).tobytes() == bars["close"][7:].tobytes()

    assert cat.write("A", "1m", {c: v[25_000:] for c, v in more.items()}) == 30_000
    folder = cat.folder("A", "1m")
    assert not (folder / "bars.parquet").exists() and (folder / "_manifest.json").is_file()
    assert cat.covered("A", "1m").ranges == [(int(ts[0]), int(more["ts"][-1]))]
    after = cat.read("A", "1m")
    for c in after:
        assert after[c].tobytes() == more[c].tobytes()


def test_appending_keeps_the_full_parts_before_the_new_bars(long_catalog):
    cat = long_catalog
    more = generate_bars(5_200, interval="1m", seed=1)
    cat.write("A", "1m", {c: v[:5_050] for c, v in more.items()}, replace=True)
    first = cat.parts("A", "1m")
    stamps = {p: p.stat().st_mtime_ns for p in first}
    assert cat.write("A", "1m", {c: v[5_050:] for c, v in more.items()}) == 5_200
    now = cat.parts("A", "1m")
    assert now[:3] == first[:3]  # full parts untouched
    assert all(p.stat().st_mtime_ns == stamps[p] for p in now[:3])
    assert not first[3].exists() and len(now) == 4  # the short last part rewritten
    whole = cat.read("A", "1m")
    for c in whole:
        assert whole[c].tobytes() == more[c].tobytes()
    # a bar inside a kept part: that part and everything after it are rewritten
    fix = {c: v[2_000:2_001].copy() for c, v in more.items()}
    fix["close"] = fix["close"] * 2
    cat.write("A", "1m", fix)
    again = cat.parts("A", "1m")
    assert again[0] == now[0] and again[1] != now[1] and len(again) == 4
    assert cat.read("A", "1m")["close"][2_000] == more["close"][2_000] * 2


def test_a_failed_write_leaves_the_folder_as_it_was(long_catalog, monkeypatch):
    cat = long_catalog
    folder = cat.folder("A", "1m")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    real, calls = parts_mod.pq.write_table, []

    def fail_second(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full")
        return real(*a, **kw)

    monkeypatch.setattr(parts_mod.pq, "write_table", fail_second)
    with pytest.raises(OSError, match="disk full"):
        cat.write("A", "1m", generate_bars(4_000, interval="1m", seed=9), replace=True)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before


def test_parts_left_by_a_writer_that_died_go_with_the_next_commit(long_catalog):
    cat = long_catalog
    folder = cat.folder("A", "1m")
    (folder / "part-dead-000.parquet").write_bytes(b"half a part")
    (folder / ".part-dead-001.parquet.tmp").write_bytes(b"less")
    assert len(cat.read("A", "1m")["ts"]) == 5_050  # not listed: not read
    cat.write("A", "1m", {c: v[:0] for c, v in cat.read("A", "1m").items()}, covered=[(0, 1)])
    names = {p.name for p in folder.iterdir()}
    assert "part-dead-000.parquet" not in names and ".part-dead-001.parquet.tmp" not in names
    assert names == {p.name for p in cat.parts("A", "1m")} | {"_manifest.json", ".lock"}


def test_a_stream_goes_on_when_a_write_replaces_its_parts(long_catalog):
    cat = long_catalog
    want = cat.read("A", "1m")
    stream = cat.iter_batches(["A"], "1m", batch_size=100)
    got = [next(stream)[1]]  # the first part is open now; the others are not yet
    old = cat.parts("A", "1m")
    cat.write("A", "1m", want, replace=True)  # the same bars in new parts; the old ones go
    assert not any(p.exists() for p in old)
    got += [b for _, b in stream]
    for c in want:
        assert np.concatenate([b[c] for b in got]).tobytes() == want[c].tobytes()


def test_a_corrupt_manifest_is_named(long_catalog):
    manifest = long_catalog.folder("A", "1m") / "_manifest.json"
    manifest.write_text("{not json")
    with pytest.raises(CatalogError, match=f"corrupt catalog manifest {manifest}"):
        long_catalog.read("A", "1m")


def test_the_lock_serializes_threads_and_is_reentrant(tmp_path):
    import threading

    cat, inside, most = Catalog(tmp_path), [], [0]

    def hold():
        with cat.lock("A", "1m"), cat.lock("A", "1m"):
            inside.append(1)
            most[0] = max(most[0], len(inside))
            threading.Event().wait(0.01)
            inside.pop()

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1
    assert (cat.folder("A", "1m") / ".lock").exists()


def test_temporaries_left_by_a_writer_killed_late_go_with_the_next_write(long_catalog):
    """A writer killed after writing the manifest's temporary, before its rename, leaves
    ``.manifest.<random>.tmp`` (and maybe a part's temporary): the next write removes them."""
    cat = long_catalog
    folder = cat.folder("A", "1m")
    (folder / ".manifest.k1ll3d.tmp").write_text('{"format": 1, "coverage": [], "parts": []}')
    (folder / ".part-dead-000.parquet.tmp").write_bytes(b"half")
    assert len(cat.read("A", "1m")["ts"]) == 5_050  # the temporaries are not read
    cat.write("A", "1m", generate_bars(10, interval="1m", seed=3), replace=True)
    names = {p.name for p in folder.iterdir()}
    assert names == {p.name for p in cat.parts("A", "1m")} | {"_manifest.json", ".lock"}
    assert len(cat.read("A", "1m")["ts"]) == 10
