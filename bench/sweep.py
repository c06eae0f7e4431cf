"""A parameter sweep: 100 variants of the SMA cross (10 fast x 10 slow windows) in one qmtl
flow, against one variant's run, vectorbt's grid run and backtesting.py's ``optimize``;
1 vs 2 workers and 1 vs 2 processes; peak memory against the number of variants.

    python bench/sweep.py                    # 10 symbols x 100,000 minute bars, 100 variants
    python bench/sweep.py --quick            # small sizes: the harness and its checks

Every peer's results are checked against qmtl's before its speed is reported: vectorbt's
returns of every variant to 1e-9, backtesting.py's equity of one variant to 1e-9 and the
total return of every variant it optimized to 1e-6. Writes ``bench/results/sweep.json``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402
import vectorbt as vbt  # noqa: E402
from backtesting import Backtest  # noqa: E402
from backtesting import Strategy as BtStrategy  # noqa: E402

from bench.common import (  # noqa: E402
    RESULTS,
    CheckFailed,
    SmaCross,
    check_metrics,
    check_returns,
    frames,
    head,
    machine,
    make_data,
    print_table,
    write_results,
)
from connectors.data.catalog import Catalog  # noqa: E402
from qmtl import backtest, sweep  # noqa: E402

FULL = {"symbols": 10, "bars": 100_000, "fast": list(range(5, 51, 5)),
        "slow": list(range(60, 241, 20)), "bt_bars": 10_000, "bt_grid": 3, "repeat": 2,
        "rss": [1, 10, 100]}
QUICK = {"symbols": 3, "bars": 3_000, "fast": [5, 10, 15], "slow": [30, 40], "bt_bars": 1_000,
         "bt_grid": 2, "repeat": 1, "rss": [1, 6]}


def grid_of(size: dict[str, Any]) -> dict[str, list[int]]:
    return {"fast": size["fast"], "slow": size["slow"]}


def timed(fn: Any, repeat: int) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


# -- peers -----------------------------------------------------------------------------------


def vectorbt_grid(data: dict, fasts: list[int], slows: list[int]) -> np.ndarray:
    """vectorbt's grid: ``vbt.MA.run`` with the window lists once, then
    ``Portfolio.from_orders`` at target percent per fast window (a row of 10 variants: all
    100 at once need ~100M order records); per-bar returns, one column per variant."""
    close = frames(data)["close"]
    n_sym = close.shape[1]
    fast = vbt.MA.run(close, window=fasts).ma.to_numpy().reshape(len(close), len(fasts), n_sym)
    slow = vbt.MA.run(close, window=slows).ma.to_numpy().reshape(len(close), len(slows), n_sym)
    wide = pd.concat([close] * len(slows), axis=1, keys=slows, names=["slow"])
    out = []
    for i in range(len(fasts)):
        raw = (fast[:, i, None, :] > slow).astype(np.float64)  # T x slow x symbol
        gross = raw.sum(axis=2, keepdims=True)
        w = (raw / np.where(gross > 1.0, gross, 1.0)).reshape(len(close), -1)
        pf = vbt.Portfolio.from_orders(
            wide, size=pd.DataFrame(w, index=close.index, columns=wide.columns),
            size_type="targetpercent", group_by="slow", cash_sharing=True, call_seq="auto",
            freq="1min")
        out.append(pf.returns().to_numpy().reshape(len(close), -1))
    return np.concatenate(out, axis=1)  # variants in grid order: fast outer, slow inner


class BtSma(BtStrategy):
    """backtesting.py's SMA cross, parameters ``fast`` and ``slow`` for ``optimize``; warm-up
    NaNs get a value that triggers nothing (it calls ``next`` only once all are defined)."""

    fast = 10
    slow = 50

    def init(self) -> None:
        def sma(n: int, fill: float) -> Any:
            return lambda x: pd.Series(x).rolling(n).mean().fillna(fill).to_numpy()

        self.f = self.I(sma(self.fast, 0.0), self.data.Close)
        self.s = self.I(sma(self.slow, np.inf), self.data.Close)

    def next(self) -> None:
        want = self.f[-1] > self.s[-1]
        if want and not self.position:
            self.buy()
        elif not want and self.position:
            self.position.close()


def backtesting_frame(data: dict) -> pd.DataFrame:
    f = frames(data)
    (sym,) = list(data)
    return pd.DataFrame({"Open": f["open"][sym], "High": f["high"][sym], "Low": f["low"][sym],
                         "Close": f["close"][sym], "Volume": f["volume"][sym]})


def quiet_backtest(df: pd.DataFrame) -> Backtest:
    return Backtest(df, BtSma, cash=1e10, commission=0.0, trade_on_close=True,
                    finalize_trades=False)


def backtesting_optimize(df: pd.DataFrame, fasts: list[int], slows: list[int]) -> pd.Series:
    """``Backtest.optimize`` over the grid (single process); its heatmap of total return."""
    with warnings.catch_warnings(), open(os.devnull, "w") as devnull:
        warnings.simplefilter("ignore")
        err, sys.stderr = sys.stderr, devnull  # its progress bar
        try:
            _, heat = quiet_backtest(df).optimize(fast=fasts, slow=slows,
                                                  maximize="Return [%]", return_heatmap=True,
                                                  method="grid")
        finally:
            sys.stderr = err
    return heat


def backtesting_one(df: pd.DataFrame, fast: int, slow: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stats = quiet_backtest(df).run(fast=fast, slow=slow)
    equity = stats["_equity_curve"]["Equity"].to_numpy()
    r = np.zeros(len(equity))
    r[1:] = equity[1:] / equity[:-1] - 1.0
    return r


# -- memory ----------------------------------------------------------------------------------


RSS_CHILD = """
import sys
from bench.common import SmaCross, make_data
from qmtl import sweep
n, symbols, bars = (int(x) for x in sys.argv[1:4])
fasts, slows = [int(x) for x in sys.argv[4].split(",")], [int(x) for x in sys.argv[5].split(",")]
data = make_data(symbols, bars)
grid = {"fast": fasts[: max(1, n // len(slows))], "slow": slows[: min(n, len(slows))]}
def kib(field):
    with open("/proc/self/status") as fh:
        return next(int(x.split()[1]) for x in fh if x.startswith(field + ":"))
before = kib("VmRSS")
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset the peak (VmHWM) to the current RSS: making the data is not counted
res = sweep(SmaCross, grid, data, symbols=sorted(data))
print(len(res.runs), before, kib("VmHWM"))
"""
"""A fresh process that imports only qmtl, makes the data and runs one sweep of about N
variants: its RSS before the sweep and its peak RSS during it (KiB; Linux's VmHWM, reset
after the data is made)."""


def rss_rows(size: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for n in size["rss"]:
        out = subprocess.run([sys.executable, "-c", RSS_CHILD, str(n), str(size["symbols"]),
                              str(size["bars"]), ",".join(map(str, size["fast"])),
                              ",".join(map(str, size["slow"]))],
                             capture_output=True, text=True, check=True, cwd=ROOT,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
        variants, before, peak = (int(x) for x in out.stdout.split()[-3:])
        rows.append({"variants": variants, "rss_before_sweep_mb": before / 1024,
                     "peak_rss_mb": peak / 1024, "sweep_mb": (peak - before) / 1024})
        print(f"  {variants} variants: RSS {before / 1024:.0f} MB before the sweep, peak "
              f"{peak / 1024:.0f} MB", flush=True)
    return rows


# -- the run ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--out", type=Path, default=RESULTS / "sweep.json")
    args = parser.parse_args(argv)
    size = QUICK if args.quick else FULL
    try:
        doc = run(size, args.quick)
    except CheckFailed as exc:
        print(f"\nCHECK FAILED: {exc}", file=sys.stderr)
        return 1
    doc["command"] = "python bench/sweep.py" + (" --quick" if args.quick else "")
    write_results(args.out, {**doc, **machine()})
    print(f"\nwrote {args.out}")
    return 0


def run(size: dict[str, Any], quick: bool) -> dict[str, Any]:
    data = make_data(size["symbols"], size["bars"])
    syms = sorted(data)
    grid = grid_of(size)
    n_var = len(grid["fast"]) * len(grid["slow"])
    bars = size["symbols"] * size["bars"]
    label = f"{size['symbols']} symbols x {size['bars']:,} 1m bars, {n_var} variants"
    print(label, flush=True)
    # warm every system (imports, numba, caches) on small data before timing
    warm = make_data(2, 400, seed=99)
    sweep(SmaCross, {"fast": [5, 10], "slow": [20]}, warm, symbols=sorted(warm))
    vectorbt_grid(warm, [5, 10], [20])
    backtesting_optimize(backtesting_frame(head(warm, 1, 400)), [5], [20])

    f0, s0 = grid["fast"][0], grid["slow"][0]
    t_one, one = timed(lambda: backtest(SmaCross, data, symbols=syms, fast=f0, slow=s0),
                       size["repeat"])
    t_sweep, res = timed(lambda: sweep(SmaCross, grid, data, symbols=syms), size["repeat"])
    # checks: some variants against their own runs, bit for bit
    check_returns("sweep v0", res.runs[0].returns, one.returns, exact=True)
    check_metrics("sweep v0", res.runs[0].metrics, one.metrics)
    for i in (n_var // 2, n_var - 1):
        alone = backtest(SmaCross, data, symbols=syms, **res.params[i])
        check_returns(f"sweep v{i}", res.runs[i].returns, alone.returns, exact=True)
        check_metrics(f"sweep v{i}", res.runs[i].metrics, alone.metrics)
    print(f"  one variant {t_one:.2f}s · sweep {t_sweep:.2f}s ({t_sweep / t_one:.1f}x one "
          f"variant; dedup {res.stats.dedup:.2f}x)", flush=True)

    t_vbt, vbt_r = timed(lambda: vectorbt_grid(data, grid["fast"], grid["slow"]), 1)
    worst = 0.0
    for j, run_ in enumerate(res.runs):
        check_returns(f"vectorbt variant {res.params[j]}", vbt_r[:, j], run_.returns)
        worst = max(worst, float(np.abs(vbt_r[:, j] - run_.returns).max()))
    print(f"  vectorbt grid {t_vbt:.2f}s (every variant's returns within {worst:.1e})",
          flush=True)

    # backtesting.py: one symbol, a prefix, a sub-grid; scaled per variant-bar
    bt_data = head(data, 1, size["bt_bars"])
    df = backtesting_frame(bt_data)
    k = size["bt_grid"]
    bt_f, bt_s = grid["fast"][:k], grid["slow"][:k]
    t_bt, heat = timed(lambda: backtesting_optimize(df, bt_f, bt_s), 1)
    ours = sweep(SmaCross, {"fast": bt_f, "slow": bt_s}, bt_data, symbols=list(bt_data))
    for p, run_ in zip(ours.params, ours.runs, strict=True):
        theirs = float(heat.loc[(p["fast"], p["slow"])]) / 100.0
        if not np.isclose(theirs, run_.metrics["total_return"], rtol=1e-6, atol=1e-9):
            raise CheckFailed(f"backtesting.py {p}: total return {theirs!r}, qmtl "
                              f"{run_.metrics['total_return']!r}")
    check_returns("backtesting.py", backtesting_one(df, bt_f[0], bt_s[0]),
                  ours.runs[0].returns)
    bt_var_bars = len(bt_f) * len(bt_s) * size["bt_bars"]
    per_var_bar_bt = t_bt / bt_var_bars
    per_var_bar_q = t_sweep / (n_var * bars)
    print(f"  backtesting.py optimize {t_bt:.2f}s for {len(bt_f) * len(bt_s)} variants x "
          f"{size['bt_bars']:,} bars of 1 symbol ({per_var_bar_bt / per_var_bar_q:.0f}x qmtl "
          "per variant-bar)", flush=True)

    t_w2, res_w2 = timed(lambda: sweep(SmaCross, grid, data, symbols=syms, workers=2),
                         size["repeat"])
    for a, b in zip(res.runs, res_w2.runs, strict=True):
        check_returns("2 workers", b.returns, a.returns, exact=True)
    with tempfile.TemporaryDirectory(prefix="qmtl-bench-sweep-") as tmp:
        cat = Catalog(tmp)
        for sym, b in data.items():
            cat.write(sym, "1m", b)
        t_p1, res_p1 = timed(lambda: sweep(SmaCross, grid, tmp, symbols=syms), size["repeat"])
        t_p2, res_p2 = timed(lambda: sweep(SmaCross, grid, tmp, symbols=syms, processes=2),
                             size["repeat"])
    for a, b in zip(res_p1.runs, res_p2.runs, strict=True):
        check_returns("2 processes", b.returns, a.returns, exact=True)
    for a, b in zip(res.runs, res_p1.runs, strict=True):
        check_returns("from the catalog", b.returns, a.returns, exact=True)
    f_p1, f_p2 = res_p1.stats.flow_seconds, res_p2.stats.flow_seconds
    print(f"  2 workers {t_w2:.2f}s · catalog 1 process {t_p1:.2f}s (flow {f_p1:.2f}s) · 2 "
          f"processes {t_p2:.2f}s (flow {f_p2:.2f}s)", flush=True)
    memory = rss_rows(size)

    rows = [
        ["qmtl, one variant", f"{t_one:.2f}", "1 variant", "reference"],
        ["qmtl sweep (1 worker)", f"{t_sweep:.2f}", f"{t_sweep / t_one:.1f}x one variant",
         "3 variants bit-identical to their runs"],
        ["vectorbt grid", f"{t_vbt:.2f}", f"qmtl {t_vbt / t_sweep:.1f}x faster",
         f"{n_var} variants' returns 1e-9"],
        ["backtesting.py optimize", f"{t_bt:.2f}",
         f"qmtl {per_var_bar_bt / per_var_bar_q:.0f}x faster per variant-bar",
         f"subset {len(bt_f) * len(bt_s)} variants x {size['bt_bars']:,} bars x 1 symbol"],
        ["qmtl sweep, 2 workers", f"{t_w2:.2f}", f"x{t_sweep / t_w2:.2f} vs 1 worker",
         "bit-identical"],
        ["qmtl sweep from the catalog, 1 process", f"{t_p1:.2f}", "reference", ""],
        ["qmtl sweep, 2 processes", f"{t_p2:.2f}", f"x{t_p1 / t_p2:.2f} vs 1 process",
         "bit-identical; includes starting 2 Pythons"],
        ["  the flow alone: 1 process / 2 processes", f"{f_p1:.2f} / {f_p2:.2f}",
         f"x{f_p1 / f_p2:.2f}", "start-up excluded (slowest process)"],
    ]
    print_table(f"sweep: {label}", ["run", "seconds", "ratio", "check"], rows, align="lrll")
    print_table("peak RSS against variants", ["variants", "peak RSS MB", "of which the sweep"],
                [[m["variants"], f"{m['peak_rss_mb']:.0f}", f"{m['sweep_mb']:.0f}"]
                 for m in memory])
    targets = [
        {"target": "sweep <= 10x one variant's run", "value": t_sweep / t_one,
         "met": t_sweep / t_one <= 10},
        {"target": ">= 5x faster than vectorbt's grid", "value": t_vbt / t_sweep,
         "met": t_vbt / t_sweep >= 5},
        {"target": ">= 100x faster per variant than backtesting.py optimize",
         "value": per_var_bar_bt / per_var_bar_q, "met": per_var_bar_bt / per_var_bar_q >= 100},
    ]
    print(f"\ntargets{' - quick sizes, not meaningful' if quick else ''}:")
    for g in targets:
        print(f"  {'met   ' if g['met'] else 'MISSED'} {g['target']}: {g['value']:.2f}")
    return {
        "case": label, "variants": n_var, "bars": bars, "quick": quick,
        "seconds": {"one_variant": t_one, "sweep": t_sweep, "vectorbt_grid": t_vbt,
                    "backtesting_optimize_subset": t_bt, "sweep_2_workers": t_w2,
                    "sweep_catalog_1_process": t_p1, "sweep_2_processes": t_p2,
                    "flow_catalog_1_process": f_p1, "flow_2_processes": f_p2},
        "backtesting_subset": {"variants": len(bt_f) * len(bt_s), "bars": size["bt_bars"],
                               "symbols": 1},
        "dedup": res.stats.dedup, "nodes_evaluated": res.stats.nodes_evaluated,
        "nodes_per_variant_total": res.stats.nodes_per_variant,
        "memory": memory, "targets": targets, "table": rows,
    }


if __name__ == "__main__":
    sys.exit(main())
