"""Many generated alphas in one flow: how long, and how much the shared nodes save.

``qmtl.alphas`` turns N seeded random alpha texts (:mod:`qmtl.alpha.generate`) into N
strategies over one universe; one Bytewax flow replays them all, evaluating every distinct
node once per symbol and bar (content ids). The table gives the flow's time, the nodes it
evaluates against the sum of each alpha's own nodes (the dedup factor), and, for a sample of
alphas replayed one flow each, the time per alpha alone and a check that their metrics are
the shared flow's.

    python bench/alphas.py                                  # 1,000 alphas, 100 x 2,000
    python bench/alphas.py --alphas 1000 --symbols 500 --bars 10000   # the full panel
    python bench/alphas.py --alphas 20 --symbols 10 --bars 300 --sample 3

The full 500 symbols x 10,000 bars panel is 5 million rows per alpha: 1,000 portfolios of it
are hours on a shared 2-core machine, so the default is scaled down (the table says to what).
Results go to ``bench/results/alphas.json``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bytewax.testing import run_main  # noqa: E402

import qmtl  # noqa: E402
from bench.common import RESULTS, Data, machine, make_data, print_table, write_results  # noqa: E402
from connectors.data.memory import aligned_batches  # noqa: E402
from dataflows.compiler import build_flow  # noqa: E402
from dataflows.control import RunControl  # noqa: E402
from qmtl.alpha.api import dedup  # noqa: E402
from qmtl.alpha.generate import random_alphas  # noqa: E402
from qmtl.runner import to_spec  # noqa: E402
from qmtl.strategy import Strategy  # noqa: E402


def run_flow(strategies: list[Strategy], data: Data,
             batch_size: int) -> tuple[float, float, dict]:
    """Replay ``strategies`` in one flow; keep only each one's final metrics (the per-bar
    rows of a thousand portfolios would not fit in memory). Wall seconds, CPU seconds of
    the process (the machine may be shared) and the metrics by name.

    >>> data = make_data(3, 80)
    >>> secs, cpu, got = run_flow(qmtl.alphas(["rank(close)", "-returns"], sorted(data), "1m"),
    ...                      data, 50)
    >>> sorted(m["n_bars"] for m in got.values())
    [80.0, 80.0]
    """
    symbols = sorted(data)
    specs = [to_spec(s, symbols, None) for s in strategies]
    final: dict[str, dict[str, float]] = {}

    def sink(out: Any) -> None:
        if out.metrics is not None:
            final[out.strategy] = out.metrics

    control = RunControl()
    flow = build_flow(specs, lambda: aligned_batches(data, batch_size, symbols), sink, control)
    t0, c0 = time.perf_counter(), time.process_time()
    run_main(flow)
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    if control.error is not None:
        raise control.error
    return seconds, cpu, final


def measure(n_alphas: int, n_symbols: int, n_bars: int, seed: int = 7,
            batch_size: int = 10_000, sample: int = 10) -> dict[str, Any]:
    """Generate, build and replay ``n_alphas`` alphas over ``n_symbols`` x ``n_bars``; replay
    ``sample`` of them alone and check their metrics equal the flow's. The results document.

    >>> doc = measure(6, 4, 60, sample=2)
    >>> doc["nodes_evaluated"] < doc["nodes_summed_over_alphas"], doc["metrics_equal_alone"]
    (True, True)
    """
    data = make_data(n_symbols, n_bars, seed=seed)
    symbols = sorted(data)
    texts = random_alphas(n_alphas, seed=seed)
    t0 = time.perf_counter()
    strategies = qmtl.alphas(texts, symbols=symbols, interval="1m")
    build = time.perf_counter() - t0
    evaluated, separately = dedup(strategies)
    shared, shared_cpu, metrics = run_flow(strategies, data, batch_size)
    chosen = strategies[:sample]
    alone = alone_cpu = 0.0
    for s in chosen:
        secs, cpu, own = run_flow([s], data, batch_size)
        alone, alone_cpu = alone + secs, alone_cpu + cpu
        if own[s.name] != metrics[s.name]:
            raise AssertionError(f"{s.name} ({s.alpha}): metrics alone differ from the flow's")
    k = max(len(chosen), 1)
    return {
        "alphas": n_alphas, "symbols": n_symbols, "bars": n_bars, "seed": seed,
        "scaled_down_from": None if (n_symbols, n_bars) == (500, 10_000) else
        {"symbols": 500, "bars": 10_000},
        "parse_and_build_seconds": build,
        "flow_seconds": shared,
        "flow_cpu_seconds": shared_cpu,
        "sample": len(chosen),
        "seconds_per_alpha_alone": alone / k,
        "cpu_seconds_per_alpha_alone": alone_cpu / k,
        "nodes_evaluated": evaluated,
        "nodes_summed_over_alphas": separately,
        "dedup_factor": separately / evaluated,
        "rows_per_second": n_symbols * n_bars * n_alphas / shared,
        "metrics_equal_alone": True,
    }


def table_rows(doc: dict[str, Any]) -> list[list[str]]:
    """The table of a :func:`measure` document.

    >>> table_rows(measure(2, 2, 30, sample=0))[4][0]
    'dedup factor (summed / evaluated)'
    """
    n = doc["alphas"]
    return [
        ["parse + build (s)", f"{doc['parse_and_build_seconds']:.2f}"],
        ["one flow, wall / CPU (s)", f"{doc['flow_seconds']:.2f} / {doc['flow_cpu_seconds']:.2f}"],
        ["per alpha in the flow, wall / CPU (ms)",
         f"{1e3 * doc['flow_seconds'] / n:.1f} / {1e3 * doc['flow_cpu_seconds'] / n:.1f}"],
        [f"per alpha alone ({doc['sample']} sampled), wall / CPU (ms)",
         f"{1e3 * doc['seconds_per_alpha_alone']:.1f} / "
         f"{1e3 * doc['cpu_seconds_per_alpha_alone']:.1f}"],
        ["dedup factor (summed / evaluated)",
         f"{doc['dedup_factor']:.2f} ({doc['nodes_summed_over_alphas']:,} / "
         f"{doc['nodes_evaluated']:,} nodes)"],
        ["symbol-bars x alphas per second", f"{doc['rows_per_second']:,.0f}"],
    ]


def title(doc: dict[str, Any]) -> str:
    """The table's title.

    >>> title({"alphas": 1000, "symbols": 100, "bars": 2000, "seed": 7})
    '1,000 generated alphas, one flow · 100 symbols x 2,000 bars (seed 7)'
    """
    return (f"{doc['alphas']:,} generated alphas, one flow · {doc['symbols']} symbols x "
            f"{doc['bars']:,} bars (seed {doc['seed']})")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark; print the table and write the results file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alphas", type=int, default=1_000)
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars", type=int, default=2_000)
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=10,
                        help="alphas also replayed one flow each")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS / "alphas.json")
    args = parser.parse_args(argv)
    doc = {"machine": machine(), **measure(args.alphas, args.symbols, args.bars, args.seed,
                                           args.batch_size, args.sample)}
    print_table(title(doc), ["measure", "value"], table_rows(doc))
    print(f"wrote {write_results(args.out, doc)}")
    return doc


if __name__ == "__main__":
    main()
