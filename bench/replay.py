"""Replay speed: the full engine vs hand-written numpy doing the same math, in one run.

    python bench/replay.py            # 1 symbol x 1M bars, 100 symbols x 100k bars, 1 bar/batch
    python bench/replay.py --quick    # small sizes, for a smoke run

Strategy: SMA(10)/SMA(50) cross, long-only, on synthetic minute bars; returns and metrics
included on both sides. Each case is checked for equal returns before it is timed. Prints a
table of bars/s and ratios and writes ``bench/results/replay.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from connectors.synthetic import generate_bars  # noqa: E402
from qmtl import Strategy, backtest  # noqa: E402
from qmtl.intervals import periods_per_year  # noqa: E402
from qmtl.metrics import MetricSet  # noqa: E402


class SmaCross(Strategy):
    interval = "1m"
    fast: int = 10
    slow: int = 50

    def signal(self, bars):
        return bars.close.sma(self.fast) > bars.close.sma(self.slow)


def _sma(close: np.ndarray, n: int) -> np.ndarray:
    """Rolling mean by cumulative sums, NaN for the first n-1 rows; close is (T, S)."""
    cs = np.cumsum(close, axis=0)
    out = np.full_like(close, np.nan)
    out[n - 1] = cs[n - 1] / n
    out[n:] = (cs[n:] - cs[:-n]) / n
    return out


def numpy_sma_cross(close: np.ndarray, fast: int = 10, slow: int = 50, max_gross: float = 1.0):
    """The same math by hand: signal, gross cap, returns, equity and metrics."""
    w = (_sma(close, fast) > _sma(close, slow)).astype(np.float64)
    gross = np.abs(w).sum(axis=1)
    scale = np.where(gross > max_gross, max_gross / np.where(gross > 0, gross, 1.0), 1.0)
    w *= scale[:, None]
    moved = np.zeros_like(close)
    moved[1:] = close[1:] / close[:-1] - 1.0
    r = np.zeros(len(close))
    r[1:] = (w[:-1] * moved[1:]).sum(axis=1)
    turnover = np.abs(np.diff(w, axis=0, prepend=0.0)).sum(axis=1)
    ms = MetricSet(periods_per_year("1m"))
    ms.update(r, turnover=turnover, gross=np.abs(w).sum(axis=1))
    return r, ms.get()


def timed(fn, repeat: int):
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def case(name: str, n_symbols: int, n_bars: int, batch_size: int, repeat: int) -> dict:
    data = {
        f"S{i:03d}": generate_bars(n_bars, interval="1m", seed=100 + i) for i in range(n_symbols)
    }
    symbols = sorted(data)
    close = np.column_stack([data[s]["close"] for s in symbols])
    total = n_symbols * n_bars

    t_np, (r_np, _m) = timed(lambda: numpy_sma_cross(close), repeat)
    t_qm, res = timed(
        lambda: backtest(SmaCross, data=data, symbols=symbols, batch_size=batch_size), repeat
    )
    np.testing.assert_allclose(res.returns, r_np, rtol=1e-9, atol=1e-12)
    row = {
        "case": name,
        "symbols": n_symbols,
        "bars_per_symbol": n_bars,
        "batch_size": batch_size,
        "qmtl_bars_per_s": total / t_qm,
        "numpy_bars_per_s": total / t_np,
        "ratio_qmtl_to_numpy": t_np / t_qm,
        "returns_match": True,
    }
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "replay.json")
    args = parser.parse_args()
    if args.quick:
        plan = [("1 sym x 20k", 1, 20_000, 10_000, 1), ("10 sym x 5k", 10, 5_000, 10_000, 1),
                ("1 bar/batch, 2k", 1, 2_000, 1, 1)]
    else:
        plan = [("1 sym x 1M", 1, 1_000_000, 10_000, 3),
                ("100 sym x 100k", 100, 100_000, 10_000, 1),
                ("1 bar/batch, 50k", 1, 50_000, 1, 1)]
    rows = [case(*p) for p in plan]
    header = f"{'case':<20}{'qmtl bars/s':>15}{'numpy bars/s':>15}{'qmtl/numpy':>12}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['case']:<20}{r['qmtl_bars_per_s']:>15,.0f}{r['numpy_bars_per_s']:>15,.0f}"
              f"{r['ratio_qmtl_to_numpy']:>12.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": platform.platform(), "python": platform.python_version(), "rows": rows,
    }, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
