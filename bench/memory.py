"""Peak memory of a replay from the Parquet catalog as history grows (run by bench/peers.py).

    python bench/memory.py                      # 100 symbols x 10k, 100k, 1M bars per symbol
    python bench/memory.py --symbols 3 --bars 1000,4000

For each history length a catalog of seeded synthetic minute bars is written under a temp
dir (removed afterwards), then a fresh process replays it through SMA(10)/SMA(50) and reports
its peak RSS (``VmHWM``):

- ``stream``: the compiled flow over ``Catalog.iter_batches`` with a sink that appends each
  output's per-symbol rows to a Parquet file (with the catalog's write options: Arrow's
  default dictionary encoding of float columns peaks at about 30 MB of encoder state per
  million-row write, which its memory pool then keeps) and keeps only the latest metrics,
  the way a replay that writes its results as it goes runs. This must stay flat as history
  grows;
- ``backtest()``: the Python API, which returns every series in memory (so it grows with
  history by design); run up to 100k bars per symbol, for contrast.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bytewax.testing import run_main  # noqa: E402

from bench.common import SmaCross  # noqa: E402
from connectors.data.catalog import WRITE_OPTIONS, Catalog  # noqa: E402
from connectors.data.synthetic import generate_bars  # noqa: E402
from dataflows.compiler import StrategyOutput, build_flow  # noqa: E402
from dataflows.control import RunControl  # noqa: E402
from qmtl.runner import backtest, to_spec  # noqa: E402

BACKTEST_MAX_BARS = 100_000


def _status_mb(field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (peak) of this process, in MB. Unlike ``ru_maxrss``, the
    peak starts afresh at exec, so a child does not inherit its parent's."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no {field} in /proc/self/status")


def write_catalog(folder: Path, n_symbols: int, n_bars: int) -> None:
    """A catalog at ``folder`` of ``n_symbols`` seeded series of ``n_bars`` minute bars."""
    cat = Catalog(folder)
    for i in range(n_symbols):
        cat.write(f"S{i:03d}", "1m", generate_bars(n_bars, interval="1m", seed=7 + i))


def child(folder: Path, mode: str) -> dict[str, Any]:
    """Replay the catalog at ``folder`` in this (fresh) process; report peak RSS."""
    cat = Catalog(folder / "catalog")
    syms = cat.symbols("1m")
    before = _status_mb("VmRSS")
    t0 = time.perf_counter()
    if mode == "backtest":
        res = backtest(SmaCross, data=cat, symbols=syms)
        n_bars, final = len(res.returns), res.metrics
    else:
        spec = to_spec(SmaCross(), syms, None)
        control = RunControl()
        writer: list[pq.ParquetWriter] = []
        state: dict[str, Any] = {"n": 0, "metrics": None}

        def sink(out: StrategyOutput) -> None:
            if out.batch is not None:
                rows = out.batch.symbol_rows
                table = pa.table({k: np.asarray(v) for k, v in rows.items()})
                if not writer:
                    writer.append(pq.ParquetWriter(folder / "bars.parquet", table.schema,
                                                  **WRITE_OPTIONS))
                writer[0].write_table(table)
                state["n"] += len(out.batch)
            if out.metrics is not None:
                state["metrics"] = out.metrics

        flow = build_flow([spec], lambda: cat.iter_batches(syms, "1m"), sink, control)
        run_main(flow)
        if writer:
            writer[0].close()
        if control.error is not None:
            raise control.error
        n_bars, final = state["n"], state["metrics"]
    seconds = time.perf_counter() - t0
    return {"mode": mode, "symbols": len(syms), "bars_per_symbol": n_bars,
            "seconds": seconds, "rss_before_mb": before, "peak_rss_mb": _status_mb("VmHWM"),
            "sharpe": final["sharpe"]}


def run_memory(n_symbols: int, sizes: list[int]) -> list[dict[str, Any]]:
    """Write, replay (fresh process each) and delete a catalog per history length."""
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="qmtl-memory-") as tmp:
            folder = Path(tmp)
            t0 = time.perf_counter()
            write_catalog(folder / "catalog", n_symbols, n)
            written = time.perf_counter() - t0
            disk = sum(p.stat().st_size for p in (folder / "catalog").rglob("*.parquet"))
            modes = ["stream"] + (["backtest"] if n <= BACKTEST_MAX_BARS else [])
            for mode in modes:
                out = subprocess.run(
                    [sys.executable, __file__, "--child", str(folder), mode],
                    capture_output=True, text=True, cwd=ROOT, check=False,
                )
                if out.returncode != 0:
                    raise RuntimeError(f"memory child failed:\n{out.stderr[-2000:]}")
                row = json.loads(out.stdout.strip().splitlines()[-1])
                row.update(catalog_mb=disk / 2**20, write_seconds=written)
                rows.append(row)
                print(f"  {n_symbols} x {n:>9,} bars  {mode:<9} peak RSS "
                      f"{row['peak_rss_mb']:>8,.0f} MB (before replay {row['rss_before_mb']:,.0f})"
                      f"  {n_symbols * n / row['seconds']:>12,.0f} bars/s  "
                      f"catalog {disk / 2**20:,.0f} MB", flush=True)
            shutil.rmtree(folder / "catalog", ignore_errors=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars", default="10000,100000,1000000")
    parser.add_argument("--child", nargs=2, metavar=("DIR", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(Path(args.child[0]), args.child[1])))
        return 0
    rows = run_memory(args.symbols, [int(x) for x in args.bars.split(",")])
    stream = [r["peak_rss_mb"] for r in rows if r["mode"] == "stream"]
    print(f"streaming peak RSS, largest / smallest history: {max(stream) / min(stream):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
