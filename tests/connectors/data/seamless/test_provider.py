"""SeamlessDataProvider: cache -> catalog -> QuestDB -> backfill, counted on real layers."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from connectors.data.catalog import Catalog, CatalogError
from connectors.data.questdb import QuestDBReader
from connectors.data.seamless import BackfillError, DataNotFound, SeamlessDataProvider
from connectors.data.synthetic import generate_bars
from qmtl.core.intervals import interval_ns
from qmtl.core.times import parse_time
from tests.connectors.conftest import (
    PG_URL,
    CountingOrigin,
    create_bars_table,
    same_bars,
    write_origin_file,
)

DAY = interval_ns("1d")
FULL = generate_bars(200, interval="1d", start="2023-01-01", seed=11)
T = FULL["ts"]


def part(bars: dict, lo: int, hi: int) -> dict:
    return {k: v[lo:hi] for k, v in bars.items()}


@pytest.fixture
def world(tmp_path):
    """A catalog holding bars 50..99 of FULL, and a CSV-folder origin holding all 200."""
    catalog = Catalog(tmp_path / "catalog")
    catalog.write("AAPL", "1d", part(FULL, 50, 100))
    write_origin_file(tmp_path / "origin", "AAPL", "1d", FULL)
    origin = CountingOrigin(tmp_path / "origin")
    return catalog, origin


def test_second_request_is_served_without_any_backfill(world, tmp_path):
    catalog, origin = world
    data = SeamlessDataProvider(catalog, origin=origin)
    first = data.read("AAPL", "1d", int(T[0]), int(T[-1]))
    assert same_bars(first, FULL)
    assert len(origin.calls) == 2  # the two missing ends, nothing else
    again = data.read("AAPL", "1d", int(T[0]), int(T[-1]))
    assert same_bars(again, FULL) and len(origin.calls) == 2
    assert data.stats["cache_hits"] == 1
    # a fresh provider (cold cache) over the same catalog: served by the catalog alone
    cold = SeamlessDataProvider(Catalog(tmp_path / "catalog"), origin=origin)
    assert same_bars(cold.read("AAPL", "1d", int(T[0]), int(T[-1])), FULL)
    assert len(origin.calls) == 2 and cold.stats["catalog_reads"] == 1


def test_partial_hit_fetches_only_the_missing_ranges(world):
    catalog, origin = world
    data = SeamlessDataProvider(catalog, origin=origin)
    start, end = int(T[30]), int(T[120])
    bars = data.read("AAPL", "1d", start, end)
    assert same_bars(bars, part(FULL, 30, 121))
    assert origin.calls == [
        ("AAPL", "1d", start, int(T[50]) - 1),   # before what the catalog holds
        ("AAPL", "1d", int(T[99]) + 1, end),      # after it
    ]
    assert [(f.start, f.end, f.rows) for f in data.fetches] == [
        (start, int(T[50]) - 1, 20), (int(T[99]) + 1, end, 21)]
    assert catalog.covered("AAPL", "1d").ranges == [(start, end)]
    # widening the request fetches only the new edges
    data.read("AAPL", "1d", int(T[20]), int(T[125]))
    assert origin.calls[2:] == [("AAPL", "1d", int(T[20]), start - 1),
                                ("AAPL", "1d", end + 1, int(T[125]))]


def test_a_range_with_no_bars_is_remembered(world):
    """A fetched range with no bars in it (a weekend, a halt) is covered: not asked again."""
    catalog, origin = world
    data = SeamlessDataProvider(catalog, origin=origin)
    later = int(T[-1]) + 10 * DAY
    assert len(data.read("AAPL", "1d", later, later + 5 * DAY)["ts"]) == 0
    data.read("AAPL", "1d", later, later + 5 * DAY)
    SeamlessDataProvider(catalog, origin=origin).read("AAPL", "1d", later, later + 5 * DAY)
    assert len(origin.calls) == 1


def test_concurrent_requests_for_the_same_missing_range_fetch_once(world):
    catalog, origin = world
    gate = threading.Barrier(8)
    results, errors = [], []

    def ask():
        # each thread its own provider (no shared cache): only the catalog lock can dedupe
        data = SeamlessDataProvider(Catalog(catalog.root), origin=origin)
        gate.wait()
        try:
            results.append(data.read("AAPL", "1d", int(T[0]), int(T[-1])))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(origin.calls) == 2  # one fetch per missing range, not one per request
    assert all(same_bars(r, FULL) for r in results)


PROCESS_SCRIPT = """
import json, sys
from connectors.data.catalog import Catalog
from connectors.data.origins import FolderOrigin
from connectors.data.seamless import SeamlessDataProvider

class Logged(FolderOrigin):
    def fetch(self, symbol, interval, start, end):
        with open(sys.argv[3], "a") as f:
            f.write(json.dumps([symbol, start, end]) + "\\n")
        return super().fetch(symbol, interval, start, end)

data = SeamlessDataProvider(Catalog(sys.argv[1]), origin=Logged(sys.argv[2]))
print(len(data.read("AAPL", "1d", int(sys.argv[4]), int(sys.argv[5]))["ts"]))
"""


def test_concurrent_processes_fetch_once(world, tmp_path):
    catalog, origin = world
    log = tmp_path / "fetches.log"
    args = [sys.executable, "-c", PROCESS_SCRIPT, str(catalog.root), str(origin.root), str(log),
            str(int(T[0])), str(int(T[-1]))]
    root = Path(__file__).resolve().parents[4]
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True, cwd=root,
                              env={"PYTHONPATH": str(root), "PATH": ""}) for _ in range(3)]
    outs = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert outs == ["200"] * 3
    fetched = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(fetched) == 2  # the two missing ranges, once, whichever process got there first


class FailingOrigin(CountingOrigin):
    """Serves a first chunk, then fails: a connection dropping mid-range."""

    def _chunks(self, symbol, interval, start, end):
        chunks = super()._chunks(symbol, interval, start, end)
        yield next(chunks)
        raise ConnectionError("connection reset by peer")


def test_origin_failing_mid_range_writes_nothing(world, tmp_path):
    catalog, _ = world
    origin = FailingOrigin(tmp_path / "origin", chunk_rows=5)
    path = catalog.path("AAPL", "1d")
    before_bytes, before_cov = path.read_bytes(), catalog.covered("AAPL", "1d")
    data = SeamlessDataProvider(catalog, origin=origin)
    with pytest.raises(BackfillError) as err:
        data.read("AAPL", "1d", int(T[0]), int(T[-1]))
    msg = str(err.value)
    assert "AAPL 1d 2023-01-01T00:00:00Z .. before 2023-02-20T00:00:00Z" in msg
    assert "connection reset by peer" in msg and "nothing of that range was written" in msg
    assert path.read_bytes() == before_bytes
    assert catalog.covered("AAPL", "1d") == before_cov
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_parquet_is_named(world):
    catalog, origin = world
    path = catalog.path("AAPL", "1d")
    path.write_bytes(b"PAR1 this is not parquet")
    data = SeamlessDataProvider(catalog, origin=origin)
    with pytest.raises(CatalogError, match=f"corrupt catalog file {path}"):
        data.read("AAPL", "1d", int(T[0]), int(T[-1]))
    assert origin.calls == []  # nothing fetched on top of a file it cannot read


def test_bad_bars_from_an_origin_are_refused_whole(tmp_path):
    bad = {k: v.copy() for k, v in FULL.items()}
    bad["close"][7] = -1.0
    write_origin_file(tmp_path / "origin", "X", "1d", bad, fmt="parquet")
    catalog = Catalog(tmp_path / "catalog")
    data = SeamlessDataProvider(catalog, origin=CountingOrigin(tmp_path / "origin"))
    with pytest.raises(BackfillError, match=r"sent bad bars for X 1d .*non-positive close -1.0"):
        data.read("X", "1d", int(T[0]), int(T[-1]))
    assert catalog.symbols() == []


def test_unknown_symbol_error_lists_every_layer(world, pg_schema):
    catalog, origin = world
    create_bars_table(pg_schema, "1d", {"MSFT": part(FULL, 0, 5)})
    qdb = QuestDBReader(PG_URL, table=f"{pg_schema}.bars_{{interval}}")
    data = SeamlessDataProvider(catalog, questdb=qdb, origin=origin)
    with pytest.raises(DataNotFound) as err:
        data.read("ZZZ", "1d", int(T[0]), int(T[9]))
    msg = str(err.value)
    assert msg.startswith("unknown symbol 'ZZZ' at interval 1d; looked in: cache")
    assert f"catalog {catalog.root} (no symbol=ZZZ/interval=1d; symbols at 1d: AAPL)" in msg
    assert f"table {pg_schema}.bars_1d (no rows for 'ZZZ')" in msg
    assert "origin folder:" in msg and "1d/ZZZ" in msg and "ZZZ_1d" in msg
    assert isinstance(err.value, LookupError)
    # and with nothing configured beyond the catalog, it says what is not configured
    with pytest.raises(DataNotFound, match="QuestDB \\(not configured: QMTL_QUESTDB\\); "
                                           "backfill origin \\(not configured"):
        SeamlessDataProvider(catalog).read("ZZZ", "1d", int(T[0]), int(T[9]))
    qdb.close()


def test_questdb_layer_fills_the_catalog_then_steps_aside(tmp_path, pg_schema):
    create_bars_table(pg_schema, "1d", {"AAPL": part(FULL, 0, 150), "MSFT": part(FULL, 0, 3)})
    qdb = QuestDBReader(PG_URL, table=f"{pg_schema}.bars_{{interval}}", page_rows=40)
    write_origin_file(tmp_path / "origin", "AAPL", "1d", FULL)
    origin = CountingOrigin(tmp_path / "origin")
    catalog = Catalog(tmp_path / "catalog")
    data = SeamlessDataProvider(catalog, questdb=qdb, origin=origin)
    bars = data.read("AAPL", "1d", int(T[0]), int(T[-1]))
    assert same_bars(bars, FULL)
    assert data.stats["questdb_reads"] == 1
    assert origin.calls == [("AAPL", "1d", int(T[149]) + 1, int(T[-1]))]  # only what QuestDB lacks
    cold = SeamlessDataProvider(Catalog(catalog.root), questdb=qdb, origin=origin)
    assert same_bars(cold.read("AAPL", "1d", int(T[0]), int(T[-1])), FULL)
    assert cold.stats["questdb_reads"] == 0 and len(origin.calls) == 1
    qdb.close()


def test_open_ended_request_uses_what_the_layers_have(world):
    catalog, origin = world
    data = SeamlessDataProvider(catalog, origin=origin)
    assert same_bars(data.read("AAPL", "1d"), FULL)  # the folder origin knows its own span
    no_origin = SeamlessDataProvider(Catalog(catalog.root))
    assert same_bars(no_origin.read("AAPL", "1d"), FULL)


def test_without_an_origin_a_gap_is_served_as_is_and_noted(world):
    catalog, _ = world
    data = SeamlessDataProvider(catalog)
    bars = data.read("AAPL", "1d", int(T[0]), int(T[-1]))
    assert same_bars(bars, part(FULL, 50, 100))
    assert len(data.notes) == 1 and "no backfill origin is configured" in data.notes[0]


def test_resampled_interval_over_a_minute_catalog(tmp_path):
    import pandas as pd

    minutes = generate_bars(3 * 1440 + 17, interval="1m", start="2024-03-01", seed=4)
    catalog = Catalog(tmp_path / "catalog")
    catalog.write("BTC", "1m", minutes)
    data = SeamlessDataProvider(catalog)
    hours = data.read("BTC", "1h")
    df = pd.DataFrame({c: minutes[c] for c in ("open", "high", "low", "close", "volume")},
                      index=pd.to_datetime(minutes["ts"], unit="ns", utc=True))
    want = df.resample("1h", closed="right", label="right").agg(
        {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"})
    # the first hour holds only its last minute (the catalog knows nothing before it) and
    # the last hour 17 of its 60 minutes (not closed): neither is served
    want = want.iloc[1:-1]
    assert hours["ts"].tolist() == want.index.as_unit("ns").asi8.tolist()
    for c in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(hours[c], want[c].to_numpy())
    assert data.coverage("BTC", "1h").ranges == [(int(hours["ts"][0]), int(hours["ts"][-1]))]
    # streamed (cache too small to hold it) gives the same bars, time-aligned
    tiny = SeamlessDataProvider(Catalog(catalog.root), cache_bytes=1000)
    assert tiny.plan_rows(["BTC"], "1h") == {"BTC": len(hours["ts"])}
    streamed = [b for _, b in tiny.iter_batches(["BTC"], "1h", batch_size=7)]
    assert np.concatenate([b["ts"] for b in streamed]).tolist() == hours["ts"].tolist()


def test_iter_batches_is_time_aligned_and_batch_sized(tmp_path):
    catalog = Catalog(tmp_path / "catalog")
    a = generate_bars(500, interval="1m", start="2024-01-01", seed=1)
    b = generate_bars(300, interval="1m", start="2024-01-01T02:00", seed=2)
    catalog.write("A", "1m", a)
    catalog.write("B", "1m", b)
    for cache in (10**9, 100):  # in memory, and streamed from the catalog
        data = SeamlessDataProvider(Catalog(catalog.root), cache_bytes=cache)
        items = list(data.iter_batches(["A", "B"], "1m", batch_size=64))
        assert max(len(x["ts"]) for _, x in items) <= 64
        got = {s: np.concatenate([x["ts"] for t, x in items if t == s]) for s in "AB"}
        assert got["A"].tolist() == a["ts"].tolist() and got["B"].tolist() == b["ts"].tolist()
        stamps = [int(x["ts"][-1]) for _, x in items]
        rounds = [max(stamps[i:i + 2]) for i in range(0, len(stamps), 2)]
        assert rounds == sorted(rounds)


def test_cache_is_bounded_and_results_do_not_depend_on_it(world):
    catalog, origin = world
    big = SeamlessDataProvider(catalog, origin=origin)
    small = SeamlessDataProvider(Catalog(catalog.root), origin=origin, cache_bytes=2_000)
    for lo, hi in ((0, 40), (10, 199), (60, 80), (0, 199)):
        x = big.read("AAPL", "1d", int(T[lo]), int(T[hi]))
        y = small.read("AAPL", "1d", int(T[lo]), int(T[hi]))
        assert same_bars(x, y) and same_bars(x, part(FULL, lo, hi + 1))
        assert small.cache.nbytes <= 2_000
    with pytest.raises(ValueError):
        x["close"][0] = 1.0  # what the cache hands out is read-only


def test_from_env(tmp_path, monkeypatch):
    monkeypatch.setenv("QMTL_DATA", str(tmp_path / "cat"))
    monkeypatch.setenv("QMTL_ORIGIN", f"folder:{tmp_path / 'o'}")
    monkeypatch.setenv("QMTL_CACHE_BYTES", "64MiB")
    data = SeamlessDataProvider.from_env()
    assert data.catalog.root == tmp_path / "cat"
    assert data.origin.name == f"folder:{tmp_path / 'o'}"
    assert data.cache.max_bytes == 64 * 2**20
    assert "catalog" in repr(data) and "folder:" in repr(data)
    monkeypatch.setenv("QMTL_ORIGIN", "gopher:x")
    with pytest.raises(ValueError, match="unknown origin"):
        SeamlessDataProvider.from_env()


def test_start_must_be_known_for_an_origin_that_cannot_tell(tmp_path):
    from connectors.data.ccxt_origin import CcxtOrigin

    class Exchange:
        id = "fake"

        def fetch_ohlcv(self, symbol, timeframe, since, limit):
            return []

    data = SeamlessDataProvider(Catalog(tmp_path / "c"), origin=CcxtOrigin(Exchange()))
    with pytest.raises(ValueError, match="give a start"):
        data.read("BTC-USDT", "1m")


def test_range_given_as_dates(world):
    catalog, origin = world
    data = SeamlessDataProvider(catalog, origin=origin)
    bars = data.read("AAPL", "1d", parse_time("2023-01-10"), parse_time("2023-01-12"))
    assert bars["ts"].tolist() == [parse_time(d) for d in ("2023-01-10", "2023-01-11",
                                                             "2023-01-12")]
