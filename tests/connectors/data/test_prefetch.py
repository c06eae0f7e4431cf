"""The background reader: order, errors, bounded lookahead, stopping; and the cold catalog read
through it (same batches as before, cache filled, threads gone)."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

from connectors.data.catalog import Catalog, CatalogError
from connectors.data.prefetch import Demux, Prefetcher
from connectors.data.seamless import SeamlessDataProvider
from connectors.data.synthetic import generate_bars


def _wait(cond, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.005)
    return cond()


def _threads(prefix: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(prefix) and t.is_alive()]


def test_items_arrive_in_order():
    items = Prefetcher(iter(range(1000)), depth=3)
    assert list(items) == list(range(1000))
    assert not items.alive
    assert list(items) == []  # exhausted stays exhausted


def test_an_error_surfaces_after_the_items_before_it_with_its_message():
    class Boom(RuntimeError):
        pass

    def produce():
        yield from range(3)
        raise Boom("corrupt catalog file /x/bars.parquet: bad page")

    items = Prefetcher(produce(), depth=2)
    got = []
    with pytest.raises(Boom, match=r"^corrupt catalog file /x/bars.parquet: bad page$"):
        for x in items:
            got.append(x)
    assert got == [0, 1, 2]
    assert not items.alive
    with pytest.raises(StopIteration):
        next(items)


def test_lookahead_is_bounded_by_depth():
    produced = []

    def produce():
        for i in range(100):
            produced.append(i)
            yield i

    items = Prefetcher(produce(), depth=2)
    assert next(items) == 0
    time.sleep(0.2)  # give the thread every chance to run ahead
    # consumed 1, queued at most 2, and at most one more made and waiting to be queued
    assert len(produced) <= 1 + 2 + 1
    items.close()


def test_close_stops_the_thread_and_closes_the_source():
    closed = threading.Event()

    def produce():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    items = Prefetcher(produce(), depth=1, name="qmtl-test-close")
    assert next(items) == 0
    items.close()
    assert not items.alive and closed.is_set()
    assert not _threads("qmtl-test-close")


def test_dropping_an_unfinished_prefetcher_stops_its_thread():
    items = Prefetcher(iter(range(10**9)), depth=1, name="qmtl-test-drop")
    next(items)
    del items
    gc.collect()
    assert _wait(lambda: not _threads("qmtl-test-drop"))


def test_with_block_stops_the_thread():
    with Prefetcher(iter(range(10**9)), depth=1, name="qmtl-test-with") as items:
        next(items)
    assert not items.alive


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="depth must be >= 1"):
        Prefetcher(iter([]), depth=0)


def test_demux_keeps_each_keys_order_and_repeats_an_error_to_every_stream():
    def produce():
        yield "a", 1
        yield "b", 2
        yield "a", 3
        raise OSError("disk gone")

    parts = Demux(produce())
    a, b = parts.stream("a"), parts.stream("b")
    assert next(a) == 1 and next(a) == 3 and next(b) == 2
    with pytest.raises(OSError, match="disk gone"):
        next(a)
    with pytest.raises(OSError, match="disk gone"):
        next(b)


# -- the cold catalog read --------------------------------------------------------------------

def _catalog(tmp_path, n=25_000):
    catalog = Catalog(tmp_path / "catalog")
    bars = {
        "A": generate_bars(n, interval="1m", start="2024-01-01", seed=1),
        "B": generate_bars(n // 2, interval="1m", start="2024-01-05", seed=2),
        "C": generate_bars(n, interval="1m", start="2023-12-20", seed=3),
    }
    for s, b in bars.items():
        catalog.write(s, "1m", b)
    return catalog, bars


def _items(provider, symbols, **kw):
    return [(s, {k: v.copy() for k, v in b.items()})
            for s, b in provider.iter_batches(symbols, "1m", **kw)]


def test_cold_read_gives_the_batches_of_a_warm_one_and_fills_the_cache(tmp_path):
    catalog, bars = _catalog(tmp_path)
    symbols = ["A", "B", "C"]
    lo, hi = int(bars["A"]["ts"][1234]), int(bars["A"]["ts"][20_001])
    for kw in ({}, {"start": lo, "end": hi}, {"batch_size": [7, 1000, 64]}):
        cold = SeamlessDataProvider(Catalog(catalog.root), cache_bytes=10**9)
        assert cold.plan_rows(symbols, "1m", kw.get("start"), kw.get("end")) == {
            s: int(((b["ts"] >= (lo if kw.get("start") else 0))
                    & (b["ts"] <= (hi if kw.get("end") else 2**62))).sum())
            for s, b in bars.items()}
        got = _items(cold, symbols, **kw)
        assert cold.stats["catalog_reads"] == 3 and cold.stats["cache_hits"] == 0
        warm_items = _items(cold, symbols, **kw)  # now from the cache (where it covers)
        if "start" not in kw:
            assert cold.stats["catalog_reads"] == 3 and cold.stats["cache_hits"] == 3
        assert len(got) == len(warm_items)
        for (s, x), (t, y) in zip(got, warm_items, strict=True):
            assert s == t and x.keys() == y.keys()
            assert all(np.array_equal(x[k], y[k]) for k in x)
        for s, b in bars.items():
            keep = np.ones(len(b["ts"]), bool)
            if kw.get("start"):
                keep = (b["ts"] >= lo) & (b["ts"] <= hi)
            mine = np.concatenate([x["close"] for t, x in got if t == s])
            assert np.array_equal(mine, b["close"][keep])


def test_cold_read_that_is_abandoned_stops_its_thread(tmp_path):
    catalog, _ = _catalog(tmp_path, n=200_000)
    provider = SeamlessDataProvider(catalog, cache_bytes=10**9)
    items = provider.iter_batches(["A", "B", "C"], "1m", batch_size=100)
    next(items)
    assert _threads("qmtl-catalog-read")
    items.close()
    del items
    gc.collect()
    assert _wait(lambda: not _threads("qmtl-catalog-read"))
    assert provider.cache.nbytes == 0 or provider.cache.covered("A", "1m").ranges


def test_cold_read_of_a_damaged_row_group_fails_as_the_whole_file_read_does(
    tmp_path, monkeypatch
):
    import connectors.data.seamless.cold as seamless

    monkeypatch.setattr(seamless, "BLOCK_GROUPS", (1, 1))  # a block per row group
    catalog, _ = _catalog(tmp_path)
    path = catalog.path("A", "1m")
    import pyarrow.parquet as pq

    column = pq.ParquetFile(path).metadata.row_group(2).column(4)  # the last group's close
    raw = bytearray(path.read_bytes())
    at = column.data_page_offset
    raw[at:at + column.total_compressed_size] = b"\xff" * column.total_compressed_size
    path.write_bytes(bytes(raw))
    with pytest.raises(CatalogError) as before:  # the whole-file read names the file
        catalog.read("A", "1m")
    provider = SeamlessDataProvider(catalog, cache_bytes=10**9)
    got = []
    with pytest.raises(CatalogError) as err:
        for _, b in provider.iter_batches(["A"], "1m"):
            got.append(len(b["ts"]))
    assert str(err.value) == str(before.value)
    assert str(err.value).startswith(f"corrupt catalog file {path}: ")
    assert sum(got) == 20_000  # the two good row groups came first
    assert provider.cache.nbytes == 0  # nothing half-read is cached
    assert _wait(lambda: not _threads("qmtl-catalog-read"))
