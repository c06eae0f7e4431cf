"""Data layers: replay from the catalog vs from memory, and the QuestDB-shaped reader.

    python bench/data.py            # 10 symbols x 1M minute bars; 1M rows from PostgreSQL
    python bench/data.py --quick    # 10 x 100k bars, 100k rows: a smoke run

1. The same backtest (SMA(10)/SMA(50) cross over 10 symbols) fed three ways in one run:
   bars held in memory (a dict of arrays, the peer), the catalog through the data provider with
   a cold cache (a new provider: Parquet read and decoded in a background thread, a few blocks
   of row groups ahead of the replay, straight into the arrays the cache keeps), and with a
   warm cache (the same provider again). Checked for identical returns first; the sources are
   run in turn ``--repeat`` times (interleaved, so a shared machine's noise falls on all
   alike) and the median is reported. Target: the catalog no more than 1.2x slower than memory.
   The in-process cold runs also pay for the allocator returning the previous run's bars to
   the OS and faulting them in again (system time, large on this VM); so the same comparison
   is made again with each run in a fresh process, as a user's first run meets it.
2. The same three sources without the engine: time-aligned batches only (the data layer's own
   cost).
3. The QuestDB reader (PG wire, parameterized SQL, paged by time, timestamps decoded to int64
   ns) against the machine's PostgreSQL holding a table of QuestDB's shape, binary and text
   results, and a plain psycopg ``fetchall`` with its default datetime conversion as the peer.

Data is generated under a temporary folder (and a temporary PostgreSQL schema), both removed at
the end. Prints a table and writes ``bench/results/data.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import psycopg
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    RESULTS,
    SmaCross,
    machine,
    median_time,
    print_table,
    write_results,
)
from connectors.data.catalog import Catalog  # noqa: E402
from connectors.data.memory import aligned_batches  # noqa: E402
from connectors.data.questdb import QuestDBReader  # noqa: E402
from connectors.data.seamless import SeamlessDataProvider  # noqa: E402
from connectors.data.synthetic import generate_bars, symbol_seed  # noqa: E402
from qmtl import backtest  # noqa: E402
from qmtl.core.bars import Batch  # noqa: E402

PG_URL = os.environ.get("QMTL_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def drain(items: Iterable[tuple[str, Batch]]) -> int:
    """Consume (symbol, batch) items; the number of bars they held."""
    return sum(len(b["ts"]) for _, b in items)


def settle() -> None:
    """Free what the previous case left and let the allocator hand it back now, so that its
    clean-up is not timed as part of the next case."""
    gc.collect()
    pa.default_memory_pool().release_unused()


def replay_cases(folder: Path, n_symbols: int, n_bars: int, repeat: int) -> list[dict]:
    symbols = [f"S{i:02d}" for i in range(n_symbols)]
    memory = {s: generate_bars(n_bars, interval="1m", start="2020-01-01",
                               seed=symbol_seed(1, s)) for s in symbols}
    catalog = Catalog(folder / "catalog")
    for s in symbols:
        catalog.write(s, "1m", memory[s])
    total = n_symbols * n_bars
    cache = int(total * 48 * 1.1)  # room for every bar: the warm case is all in memory

    # identical results first
    want = backtest(SmaCross, data=memory, symbols=symbols)
    got = backtest(SmaCross, data=SeamlessDataProvider(catalog, cache_bytes=cache),
                   symbols=symbols)
    assert np.array_equal(want.returns, got.returns), "catalog and memory disagree"
    assert want.data["fingerprint"] == got.data["fingerprint"]

    rows = []
    for kind in ("engine", "batches"):
        def run(data, kind=kind):
            if kind == "engine":
                return backtest(SmaCross, data=data, symbols=symbols)
            if isinstance(data, dict):
                return drain(aligned_batches(data, 10_000, symbols))
            return drain(data.iter_batches(symbols, "1m", batch_size=10_000))

        warm = SeamlessDataProvider(Catalog(catalog.root), cache_bytes=cache)
        run(warm)
        sources = {
            "memory": lambda run=run: run(memory),
            "catalog, cold cache": lambda run=run: run(
                SeamlessDataProvider(Catalog(catalog.root), cache_bytes=cache)),
            "catalog, warm cache": lambda run=run, warm=warm: run(warm),
        }
        # interleaved, so the noise of a shared machine falls on every source alike
        times: dict[str, list[float]] = {k: [] for k in sources}
        for _ in range(repeat):
            for name, fn in sources.items():
                settle()
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        assert kind != "batches" or warm.stats["catalog_reads"] == n_symbols
        t_mem = statistics.median(times["memory"])
        for source, ts in times.items():
            t = statistics.median(ts)
            row = {"case": f"{kind}: {n_symbols} x {n_bars:,} 1m bars", "source": source,
                   "seconds": t, "bars_per_s": total / t, "runs": ts}
            if kind == "engine":  # (without the engine, memory costs ~nothing: no ratio)
                row["vs_memory"] = t / t_mem
            rows.append(row)
    return rows


def child(folder: str, source: str) -> None:
    """One backtest in this (fresh) process; print its seconds (see ``fresh_process_cases``)."""
    catalog = Catalog(folder)
    symbols = catalog.symbols("1m")
    if source == "memory":  # owned arrays, read before the clock starts
        data = {s: {k: np.array(v) for k, v in catalog.read(s, "1m").items()} for s in symbols}
    else:
        data = SeamlessDataProvider(catalog, cache_bytes=2**31)
    small = {s: {k: v[:1000] for k, v in catalog.read(s, "1m").items()} for s in symbols}
    backtest(SmaCross, data=small, symbols=symbols)  # imports and first-call costs, off the clock
    settle()
    t0 = time.perf_counter()
    backtest(SmaCross, data=data, symbols=symbols)
    print(time.perf_counter() - t0)


def fresh_process_cases(folder: Path, n_symbols: int, n_bars: int, repeat: int) -> list[dict]:
    """A first run in a new process, as a user meets it: memory (bars already in arrays) vs
    the catalog through the provider (cold: nothing cached). In-process cold runs also pay
    for the allocator returning and re-faulting the previous run's bars, which this avoids."""
    times: dict[str, list[float]] = {"memory": [], "catalog": []}
    for _ in range(repeat):
        for source in times:
            out = subprocess.run([sys.executable, __file__, "--child", str(folder / "catalog"),
                                  source], capture_output=True, text=True, check=True)
            times[source].append(float(out.stdout.strip().splitlines()[-1]))
    t_mem = statistics.median(times["memory"])
    total = n_symbols * n_bars
    return [{"case": f"engine, fresh process: {n_symbols} x {n_bars:,} 1m bars",
             "source": "memory" if k == "memory" else "catalog, cold (new process)",
             "seconds": statistics.median(v), "bars_per_s": total / statistics.median(v),
             "vs_memory": statistics.median(v) / t_mem, "runs": v} for k, v in times.items()]


def reader_cases(n_rows: int, repeat: int) -> list[dict]:
    """The QuestDB reader against a QuestDB-shaped PostgreSQL table, and plain psycopg."""
    try:
        psycopg.connect(PG_URL, connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        print(f"skipping the reader: PostgreSQL not reachable at {PG_URL}: {exc}")
        return []
    schema = f"qmtl_bench_{uuid.uuid4().hex[:10]}"
    bars = generate_bars(n_rows, interval="1m", start="2020-01-01", seed=5)
    epoch = dt.datetime(1970, 1, 1)
    rows = []
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
        try:
            table = f'"{schema}"."bars_1m"'
            conn.execute(f"CREATE TABLE {table} (symbol text, open float8, high float8, "
                         "low float8, close float8, volume float8, ts timestamp)")
            with conn.cursor().copy(f"COPY {table} FROM STDIN") as copy:
                for i in range(n_rows):
                    copy.write_row(("BTC", *(float(bars[c][i]) for c in
                                             ("open", "high", "low", "close", "volume")),
                                    epoch + dt.timedelta(microseconds=int(bars["ts"][i]) // 1000)))
            conn.execute(f"CREATE INDEX ON {table} (symbol, ts)")
            conn.execute(f"ANALYZE {table}")
            lo, hi = int(bars["ts"][0]), int(bars["ts"][-1])
            for binary in (True, False):
                reader = QuestDBReader(PG_URL, table=f"{schema}.bars_{{interval}}",
                                       binary=binary)
                t, got = median_time(lambda r=reader: r.read("BTC", "1m", lo, hi), repeat)
                assert np.array_equal(got["ts"], bars["ts"]) and np.array_equal(
                    got["close"], bars["close"])
                reader.close()
                rows.append({"case": f"QuestDB-shaped reader, {n_rows:,} rows (PostgreSQL)",
                             "source": f"QuestDBReader, {'binary' if binary else 'text'}",
                             "seconds": t, "rows_per_s": n_rows / t})

            def plain():
                with conn.cursor() as cur:
                    cur.execute(f"SELECT ts, open, high, low, close, volume FROM {table} "
                                "WHERE symbol = %s ORDER BY ts", ("BTC",))
                    out = cur.fetchall()
                cols = list(zip(*out, strict=True))
                ts = np.array(cols[0], dtype="datetime64[ns]").astype(np.int64)
                return ts, [np.array(c, dtype=np.float64) for c in cols[1:]]

            t, (ts, _) = median_time(plain, repeat)
            assert np.array_equal(ts, bars["ts"])
            rows.append({"case": f"QuestDB-shaped reader, {n_rows:,} rows (PostgreSQL)",
                         "source": "psycopg fetchall + numpy (peer)", "seconds": t,
                         "rows_per_s": n_rows / t})
        finally:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--repeat", type=int, default=5, help="runs per case (median)")
    parser.add_argument("--child", nargs=2, metavar=("FOLDER", "SOURCE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    n_bars = 100_000 if args.quick else 1_000_000
    n_rows = 100_000 if args.quick else 1_000_000
    folder = Path(tempfile.mkdtemp(prefix="qmtl-bench-data-"))
    try:
        rows = replay_cases(folder, 10, n_bars, args.repeat)
        rows += fresh_process_cases(folder, 10, n_bars, args.repeat)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rows += reader_cases(n_rows, args.repeat)

    print_table(f"bench/data.py (median of {args.repeat} runs)",
                ["case", "source", "seconds", "rate", "vs memory"],
                [[r["case"], r["source"], f"{r['seconds']:.3f}",
                  f"{r.get('bars_per_s', r.get('rows_per_s')) / 1e6:.2f} M "
                  f"{'bars/s' if 'bars_per_s' in r else 'rows/s'}",
                  f"{r['vs_memory']:.2f}x" if "vs_memory" in r else "-"] for r in rows],
                align="llrrr")
    host = machine()
    out = write_results(RESULTS / "data.json", {
        "machine": {"python": host["python"], "cpus": host["cpus"]},
        "quick": args.quick, "repeat": args.repeat, "target": "catalog <= 1.2x memory",
        "rows": rows,
    })
    print(f"wrote {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
