"""Tear sheets of big runs: how long ``qmtl report`` takes and how large its page is.

    python bench/report.py             # 1 symbol x 1M bars, 10 x 100k, 100 x 10k (1M rows each)
    python bench/report.py --quick     # 1 symbol x 100k bars

Each case backtests the SMA cross on seeded minute bars, writes the run folder, then times
``write_report(load_run(folder))`` (reading bars.parquet and metrics.json, the statistics,
the charts and the page, as ``qmtl report`` does; median of --repeat) and measures the page:
its size, the part that is not the packed plotly.js, and whether the plotted drawdown still
bottoms at the run's max drawdown. Packing plotly.js (gzip and base64, once per process) is
timed apart, first. Prints a table and writes ``bench/results/report.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    RESULTS,
    SmaCross,
    machine,
    make_data,
    median_time,
    print_table,
    write_results,
)
from qmtl import backtest  # noqa: E402
from qmtl.report import load_run, write_report  # noqa: E402
from qmtl.report.html import plotly_js_packed  # noqa: E402
from qmtl.report.sheet import BUDGET, figures  # noqa: E402

LIMIT_SECONDS = 3.0
LIMIT_BYTES = BUDGET


def case(n_symbols: int, n_bars: int, repeat: int) -> dict[str, object]:
    """Time and size of the tear sheet of one backtest."""
    data = make_data(n_symbols, n_bars)
    result = backtest(SmaCross, data=data, symbols=sorted(data))
    with tempfile.TemporaryDirectory() as tmp:
        folder = result.write(Path(tmp) / "run")
        out = folder / "report.html"
        seconds, _ = median_time(lambda: write_report(load_run(folder), out), repeat)
        size = out.stat().st_size
        run = load_run(folder)
    plotted = dict(figures(run))["Drawdown"].data[0].y
    keeps_worst = bool(-np.min(plotted) == result.metrics["max_drawdown"])
    return {
        "symbols": n_symbols, "bars": n_bars, "rows": n_symbols * n_bars,
        "seconds": seconds, "bytes": size,
        "bytes_besides_plotly_js": size - len(plotly_js_packed()),
        "plotted_drawdown_points": len(plotted), "keeps_max_drawdown": keeps_worst,
        "within_limits": seconds <= LIMIT_SECONDS and size <= LIMIT_BYTES,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--out", type=Path, default=RESULTS / "report.json")
    args = parser.parse_args()
    shapes = [(1, 100_000)] if args.quick else [(1, 1_000_000), (10, 100_000), (100, 10_000)]
    t0 = time.perf_counter()
    packed = len(plotly_js_packed())
    packing = time.perf_counter() - t0
    rows = [case(s, b, args.repeat) for s, b in shapes]
    print_table(
        f"qmtl report: tear sheet of a run (median of {args.repeat}; limits "
        f"{LIMIT_SECONDS:.0f} s, {LIMIT_BYTES / 1e6:.1f} MB)",
        ["run", "seconds", "page MB", "besides plotly.js KB", "drawdown points",
         "keeps max drawdown"],
        [[f"{r['symbols']} x {r['bars']:,} bars", f"{r['seconds']:.2f}",
          f"{r['bytes'] / 1e6:.2f}", f"{r['bytes_besides_plotly_js'] / 1e3:.0f}",
          r["plotted_drawdown_points"], "yes" if r["keeps_max_drawdown"] else "NO"]
         for r in rows],
    )
    print(f"plotly.js packed: {packed / 1e6:.2f} MB, in {packing:.2f} s (once per process)")
    path = write_results(args.out, {"machine": machine(), "limits": {
        "seconds": LIMIT_SECONDS, "bytes": LIMIT_BYTES}, "plotly_js_packed_bytes": packed,
        "packing_seconds": packing, "rows": rows})
    print(f"wrote {path}")
    if not all(r["within_limits"] and r["keeps_max_drawdown"] for r in rows):
        raise SystemExit("a tear sheet is over its limits or lost the max drawdown")


if __name__ == "__main__":
    main()
