"""Alpha-mining throughput: candidates evaluated per second by ``qmtl mine``'s search (each
generation one flow, equal alphas once, shared nodes once) against evaluating each candidate
in a backtest of its own (a sample of them, timed, extrapolated to every candidate).

    python bench/mine.py                                     # 50 x 4 generations, 20 x 500
    python bench/mine.py --population 200 --generations 5 --symbols 100 --bars 2520

Results go to ``bench/results/mine.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import qmtl  # noqa: E402
from bench.common import RESULTS, machine, print_table, write_results  # noqa: E402
from connectors.data.synthetic import generate_bars  # noqa: E402
from qmtl.alpha.mine import mine  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--population", type=int, default=50)
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument("--bars", type=int, default=500)
    ap.add_argument("--sample", type=int, default=10, help="candidates timed alone")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS / "mine.json")
    args = ap.parse_args(argv)
    symbols = [f"S{i:03d}" for i in range(args.symbols)]
    data = {s: generate_bars(args.bars, seed=3 + i) for i, s in enumerate(symbols)}
    t0 = time.perf_counter()
    res = mine(data, symbols, population=args.population, generations=args.generations,
               seed=args.seed)
    with_s = time.perf_counter() - t0
    sample = res.candidates[: args.sample]
    t0 = time.perf_counter()
    for c in sample:
        qmtl.backtest(qmtl.alpha(c.text, symbols), data=data)
    alone = (time.perf_counter() - t0) / max(len(sample), 1)
    rate, alone_rate = res.tried / with_s, 1.0 / alone
    nodes = sum(g.nodes for g in res.generations)
    nodes_alone = sum(g.nodes_alone for g in res.generations)
    rows = [["qmtl mine (one flow a generation, dedup)", f"{with_s:.2f}", f"{rate:.1f}",
             "1.0x"],
            ["each candidate its own backtest", f"{alone * res.tried:.2f} (est.)",
             f"{alone_rate:.1f}", f"{alone_rate / rate:.2f}x"]]
    print_table(f"{res.tried} candidates ({len(res.candidates)} distinct, content-id dedup "
                f"{res.tried / len(res.candidates):.2f}x; nodes {nodes} of {nodes_alone}) "
                f"x {args.symbols} symbols x {args.bars} bars",
                ["how", "seconds", "candidates / s", "vs mine"], rows)
    write_results(args.out, {"population": args.population, "generations": args.generations,
                             "symbols": args.symbols, "bars": args.bars, "tried": res.tried,
                             "distinct": len(res.candidates), "seconds": with_s,
                             "candidates_per_s": rate, "alone_seconds_per_candidate": alone,
                             "alone_candidates_per_s": alone_rate,
                             "speedup": rate / alone_rate, "nodes": nodes,
                             "nodes_alone": nodes_alone, "machine": machine()})


if __name__ == "__main__":
    main()
