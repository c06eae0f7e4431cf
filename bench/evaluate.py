"""The world's evaluator: one roll of N submitted alphas on a daily market of S symbols,
evaluated in one flow (what ``qmtl world evaluate`` runs: ``qmtl.sweep_many`` over the
rebuilt artifacts, nodes they share computed once) against N separate backtests (what N
clients' ``qmtl submit`` ran before). Every alpha's Sharpe, total return and bar count in
the flow are checked against its own backtest to 1e-12 before any time is reported.

    python bench/evaluate.py                 # 200 alphas x 50 symbols x 750 daily bars
    python bench/evaluate.py --quick         # 8 alphas x 5 symbols x 300 bars

The issue's size (1,000 alphas on 500 symbols) is scaled down to fit this machine (2 cores
shared); the sizes are in the JSON. Writes ``bench/results/evaluate.json``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import RESULTS, machine, print_table, write_results  # noqa: E402
from connectors.data.catalog import Catalog  # noqa: E402
from connectors.data.synthetic import generate_bars  # noqa: E402
from qmtl import backtest  # noqa: E402
from qmtl.alpha.spec import GraphStrategy  # noqa: E402
from qmtl.artifact import build_artifact, verify  # noqa: E402
from qmtl.core.expr import col  # noqa: E402
from qmtl.sweep import sweep_many  # noqa: E402

FULL = {"alphas": 200, "symbols": 50, "bars": 750}
QUICK = {"alphas": 8, "symbols": 5, "bars": 300}


def alphas(n: int, symbols: list[str]) -> list[GraphStrategy]:
    """``n`` distinct alphas on ``symbols``: price above its k-bar mean, or above itself k
    bars ago (they share the close and, pairwise, nothing else)."""
    out = []
    for i in range(n):
        k = 2 + i // 2
        close = col("close")
        expr = close > close.sma(k) if i % 2 == 0 else close > close.shift(k)
        out.append(GraphStrategy(expr, name=f"a{i}", symbols=symbols))
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print the table, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS / "evaluate.json")
    args = ap.parse_args(argv)
    size = QUICK if args.quick else FULL
    with tempfile.TemporaryDirectory() as d:
        cat = Catalog(Path(d) / "data")
        symbols = [f"S{i:03d}" for i in range(size["symbols"])]
        for i, s in enumerate(symbols):
            cat.write(s, "1d", generate_bars(size["bars"], seed=i))
        work = Path(d) / "artifacts"
        docs = [build_artifact(a, a.name) for a in alphas(size["alphas"], symbols)]
        t0 = time.perf_counter()
        rebuilt = [verify(doc, work) for doc in docs]  # what the evaluator does first
        flow = sweep_many(rebuilt, data=cat)
        t_flow = time.perf_counter() - t0
        t0 = time.perf_counter()
        alone = [backtest(verify(doc, work), data=cat) for doc in docs]
        t_alone = time.perf_counter() - t0
    worst = 0.0
    for run, res in zip(flow.runs, alone, strict=True):
        for k in ("sharpe", "total_return"):
            worst = max(worst, abs(run.metrics[k] - res.metrics[k]))
        if run.n_bars != len(res.returns):
            raise SystemExit(f"bar counts differ: {run.n_bars} != {len(res.returns)}")
    if worst > 1e-12:
        raise SystemExit(f"the flow's metrics differ from the backtests' by {worst:g}")
    doc = {
        "size": size,
        "machine": machine(),
        "one_flow_s": t_flow,
        "separate_backtests_s": t_alone,
        "speedup": t_alone / t_flow,
        "dedup": flow.stats.dedup,
        "max_metric_difference": worst,
    }
    print_table(
        f"one roll: {size['alphas']} alphas x {size['symbols']} symbols x {size['bars']} bars",
        ["how", "seconds", "vs one flow"],
        [
            ["one flow (qmtl world evaluate)", f"{t_flow:.2f}", "1.00x"],
            [f"{size['alphas']} separate backtests", f"{t_alone:.2f}", f"{t_alone / t_flow:.2f}x"],
        ],
    )
    print(f"node dedup {flow.stats.dedup:.2f}x; metrics equal to {worst:.1e}")
    write_results(args.out, doc)
    return doc


if __name__ == "__main__":
    main()
