"""Replay speed against the peers, in one run: speed, scaling and memory.

    python bench/peers.py                 # full sizes (about 10 minutes on 2 cores)
    python bench/peers.py --quick         # small sizes, seconds: the test suite runs this
    python bench/peers.py --skip-memory --skip-scaling

One process generates seeded synthetic minute bars once and runs the same three strategies
(SMA(10)/SMA(50) cross; RSI(14) mean reversion, long below 30, flat above 50; 20-bar breakout
with a 3 x ATR(14) chandelier stop) through each system:

- qmtl, the full path (validation, fingerprint, returns, metrics, per-symbol rows), with the
  default batch size and with one bar per batch (on a subset, reported per bar);
- hand-written numpy doing the same math (scipy's ``lfilter`` for Wilder smoothing): the floor;
- vectorbt (indicators, ``Portfolio.from_orders`` at target percent, returns, metrics; numba
  warmed before timing);
- backtesting.py and backtrader (per-bar Python loops; on a subset, reported per bar);
- Bytewax with a plain per-bar ``stateful_map`` (what a naive streaming port would do).

Every system's per-bar returns are checked against qmtl's before any speed is reported. All
systems use qmtl's execution model: the target weight set at a bar's close is held to the next
close, fills at the close, fractional size, no cost; with more than one symbol each held
symbol gets ``1 / (number held)`` of capital, rebalanced every bar. backtesting.py sizes in
whole shares; with 1e10 of cash the part left in cash is below 1e-8 of equity, so its returns
are checked like the others (1e-9) and its final equity to 1e-6 relative. A failed check
stops the run with a non-zero exit.

Then scaling (qmtl with 1 and 2 Bytewax workers, and 2 Bytewax processes on 127.0.0.1: speed-up
and identical results) and memory (peak RSS of a streaming replay from the Parquet catalog as
history grows, each in a fresh process: see ``bench/memory.py``). Prints the tables and the
targets of issues 7 and 29, writes ``bench/results/peers.json``.

The systems live in ``bench/systems/`` (one module each), what benchmarks share in
``bench/common.py``, scaling in ``bench/scaling.py`` and memory in ``bench/memory.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import (  # noqa: E402
    RESULTS,
    STRATEGIES,
    CheckFailed,
    Data,
    best_time,
    check_metrics,
    check_returns,
    frames,
    head,
    machine,
    make_data,
    print_table,
    race,
    run_qmtl,
    write_results,
)
from bench.memory import run_memory  # noqa: E402
from bench.scaling import run_scaling  # noqa: E402
from bench.systems.backtesting_peer import backtesting_frame, run_backtesting  # noqa: E402
from bench.systems.backtrader_peer import run_backtrader  # noqa: E402
from bench.systems.bytewax_naive import bytewax_items, run_bytewax_naive  # noqa: E402
from bench.systems.numpy_floor import matrices, run_numpy  # noqa: E402
from bench.systems.vectorbt_peer import run_vectorbt  # noqa: E402

# -- harness --------------------------------------------------------------------------------


@dataclass
class Case:
    label: str
    n_symbols: int
    n_bars: int
    slow_bars: int = 0  # bars per symbol for the per-bar Python peers (a prefix)
    slow_symbols: int = 1  # symbols for backtrader (the first ones)
    one_bar_bars: int = 0  # bars per symbol for qmtl with one bar per batch (a prefix)


@dataclass
class Plan:
    cases: list[Case]
    repeat: int
    scaling: Case
    memory_bars: list[int]
    memory_symbols: int


FULL = Plan(
    cases=[Case("1 symbol x 1M", 1, 1_000_000, slow_bars=20_000, one_bar_bars=20_000),
           Case("100 symbols x 100k", 100, 100_000, slow_bars=2_000, slow_symbols=10,
                one_bar_bars=200)],
    repeat=5,
    scaling=Case("100 symbols x 100k", 100, 100_000),
    memory_bars=[10_000, 100_000, 1_000_000],
    memory_symbols=100,
)
QUICK = Plan(
    cases=[Case("1 symbol x 5k", 1, 5_000, slow_bars=600, one_bar_bars=600),
           Case("4 symbols x 2k", 4, 2_000, slow_bars=600, slow_symbols=2, one_bar_bars=300)],
    repeat=1,
    scaling=Case("4 symbols x 2k", 4, 2_000),
    memory_bars=[1_000, 4_000],
    memory_symbols=3,
)


def peer_run(
    label: str, system: str, strategy: str, timing: tuple[float, Any],
    want: np.ndarray, bars: int, *, exact: bool = False, metrics: dict | None = None,
    note: str = "",
) -> dict[str, Any]:
    seconds, (r, m) = timing
    check = check_returns(system, np.asarray(r, dtype=np.float64), want, exact)
    if metrics is not None:
        check_metrics(system, m, metrics)
        check += ", metrics 1e-8"
    return {"case": label, "strategy": strategy, "system": system, "bars": bars,
            "seconds": seconds, "bars_per_s": bars / seconds, "check": check, "note": note}


def run_case(case: Case, plan: Plan, warm: Data) -> list[dict[str, Any]]:
    data = make_data(case.n_symbols, case.n_bars)
    m = matrices(data)
    f = frames(data)
    total = case.n_symbols * case.n_bars
    slow_syms = min(case.slow_symbols, case.n_symbols)
    slow_bw_bars = min(case.slow_bars, case.n_bars)
    slow = head(data, slow_syms, slow_bw_bars)
    slow_f = frames(slow)
    slow_items = bytewax_items(head(data, case.n_symbols, slow_bw_bars))
    bt_frame = backtesting_frame(slow) if case.n_symbols == 1 else None
    one = head(data, case.n_symbols, min(case.one_bar_bars, case.n_bars))
    rows = []
    for name in STRATEGIES:
        # warm every system (imports, numba, caches) before timing
        wm = matrices(warm)
        run_qmtl(name, warm)
        run_numpy(name, wm)
        wf = frames(warm)
        run_vectorbt(name, wf)
        run_backtrader(name, frames(head(warm, 1, 400)))
        run_backtesting(name, backtesting_frame(head(warm, 1, 400)))
        run_bytewax_naive(name, bytewax_items(warm), len(warm))
        fast = race({"qmtl": lambda n=name: run_qmtl(n, data),
                     "numpy": lambda n=name: run_numpy(n, m),
                     "vectorbt": lambda n=name: run_vectorbt(n, f)}, plan.repeat)
        seconds, (want, want_m) = fast["qmtl"]
        base = {"case": case.label, "strategy": name, "system": "qmtl", "bars": total,
                "seconds": seconds, "bars_per_s": total / seconds, "check": "reference",
                "note": "batch 10,000: returns, 13 metrics, per-symbol rows, fingerprint"}
        got = [base]
        # the slow peers run on a prefix: no look-ahead makes qmtl's prefix their reference
        slow_want = want[: len(slow[sorted(slow)[0]]["ts"])]
        if slow_syms != case.n_symbols:
            slow_want = run_qmtl(name, slow)[0]
        got.append(peer_run(case.label, "numpy (floor)", name, fast["numpy"], want, total,
                            metrics=want_m, note="hand-written, whole arrays"))
        got.append(peer_run(case.label, "vectorbt", name, fast["vectorbt"], want, total,
                            note="from_orders target percent; 7 metrics"))
        one_bars = case.n_symbols * len(one[sorted(one)[0]]["ts"])
        got.append(peer_run(case.label, "qmtl, 1 bar per batch", name,
                            best_time(lambda n=name: run_qmtl(n, one, batch_size=1), 1),
                            want[: one_bars // case.n_symbols], one_bars, exact=True,
                            note=f"subset {case.n_symbols} x {one_bars // case.n_symbols:,}"))
        if bt_frame is not None:
            got.append(peer_run(case.label, "backtesting.py", name,
                                best_time(lambda n=name: run_backtesting(n, bt_frame), 1),
                                slow_want, len(bt_frame), note=f"subset {len(bt_frame):,} "
                                "bars; whole shares of 1e10 cash"))
        bt_bars = slow_syms * len(slow[sorted(slow)[0]]["ts"])
        got.append(peer_run(case.label, "backtrader", name,
                            best_time(lambda n=name: run_backtrader(n, slow_f), 1), slow_want,
                            bt_bars, note=f"subset {slow_syms} x {bt_bars // slow_syms:,}; "
                            "fractional, cheat-on-close"))
        got.append(peer_run(case.label, "bytewax per-bar", name,
                            best_time(lambda n=name: run_bytewax_naive(n, slow_items,
                                                                   case.n_symbols), 1),
                            want[:slow_bw_bars], len(slow_items),
                            note=f"subset {case.n_symbols} x {slow_bw_bars:,}; stateful_map"))
        for row in got:
            row["qmtl_speedup"] = base["bars_per_s"] / row["bars_per_s"]
            print(f"  {case.label:<20} {name:<14} {row['system']:<22} "
                  f"{row['bars_per_s']:>14,.0f} bars/s  x{row['qmtl_speedup']:<8.2f} "
                  f"{row['check']}", flush=True)
        rows.extend(got)
    return rows


# -- report ---------------------------------------------------------------------------------


def targets(rows: list[dict], scaling: list[dict], memory: list[dict],
            plan: Plan) -> list[dict]:
    """The targets of issues 7 and 29, each with the measured value."""

    def speedup(case: Case, system: str, strategy: str = "sma_cross") -> float | None:
        for r in rows:
            if r["case"] == case.label and r["strategy"] == strategy and r["system"] == system:
                return r["qmtl_speedup"]
        return None

    one, many = plan.cases
    out = []
    for case, system, goal in ((one, "backtesting.py", 100.0), (one, "backtrader", 1000.0),
                               (many, "vectorbt", 3.0)):
        value = speedup(case, system)
        out.append({"target": f"SMA cross {case.label}: qmtl / {system} >= {goal:g}",
                    "value": value, "met": value is not None and value >= goal})
    # issue 29: every strategy at 5x vectorbt and at the numpy floor or better
    for strategy in STRATEGIES:
        for system, goal in (("vectorbt", 5.0), ("numpy (floor)", 1.0)):
            value = speedup(one, system, strategy)
            out.append({"target": f"{strategy} {one.label}: qmtl / {system} >= {goal:g}",
                        "value": value, "met": value is not None and value >= goal})
    if scaling:
        w2 = next(r["speedup"] for r in scaling if r["setup"].startswith("2 workers"))
        p2 = next(r["speedup"] for r in scaling if r["setup"].startswith("2 processes"))
        out.append({"target": "2 workers / 1 worker >= 1.7", "value": w2, "met": w2 >= 1.7})
        out.append({"target": "2 processes / 1 process >= 1.7", "value": p2, "met": p2 >= 1.7})
    if memory:
        rss = [r["peak_rss_mb"] for r in memory if r["mode"] == "stream"]
        growth = max(rss) / min(rss)
        out.append({"target": "streaming replay peak RSS flat in history (<= 1.3x)",
                    "value": growth, "met": growth <= 1.3})
    return out


def print_rows(rows: list[dict]) -> None:
    """The speed table of every case, strategy and system."""
    print_table("replay speed (qmtl x = qmtl's bars/s over the system's)",
                ["case", "strategy", "system", "bars", "bars/s", "qmtl x", "check / note"],
                [[r["case"], r["strategy"], r["system"], f"{r['bars']:,}",
                  f"{r['bars_per_s']:,.0f}", f"{r['qmtl_speedup']:.2f}",
                  f"{r['check']}; {r['note']}"] for r in rows], align="lllrrrl")


def markdown(doc: dict[str, Any]) -> str:
    """The README's tables from a ``peers.json``."""
    out = [f"`{doc['command']}` ({doc['cpus']} cores, Python {doc['python']}); qmtl x = qmtl's "
           "bars/s over the system's, measured in the same run.", ""]
    for case in dict.fromkeys(r["case"] for r in doc["rows"]):
        rows = [r for r in doc["rows"] if r["case"] == case]
        systems = list(dict.fromkeys(r["system"] for r in rows))
        strategies = list(dict.fromkeys(r["strategy"] for r in rows))
        out.append(f"| {case} | " + " | ".join(f"{s} bars/s (qmtl x)" for s in strategies) + " |")
        out.append("|---" * (len(strategies) + 1) + "|")
        for system in systems:
            cells = []
            for strategy in strategies:
                r = next(r for r in rows if r["system"] == system and r["strategy"] == strategy)
                rate = r["bars_per_s"]
                text = f"{rate / 1e6:.2f} M" if rate >= 1e6 else f"{rate / 1e3:.1f} k"
                cells.append(text if system == "qmtl" else f"{text} ({r['qmtl_speedup']:.2f})")
            note = next(r["note"] for r in rows if r["system"] == system)
            sub = f" ({note.split(';')[0]})" if note.startswith("subset") else ""
            out.append(f"| {system}{sub} | " + " | ".join(cells) + " |")
        out.append("")
    if doc["scaling"]:
        out += ["| SMA cross, " + doc["scaling"][0]["case"] + " | bars/s | speed-up |",
                "|---|---|---|"]
        out += [f"| {r['setup']} | {r['bars_per_s'] / 1e6:.2f} M | {r['speedup']:.2f} |"
                for r in doc["scaling"]]
        out.append("")
    if doc["memory"]:
        symbols = doc["memory"][0]["symbols"]
        out += [f"| replay of {symbols} symbols from the catalog | peak RSS | bars/s |",
                "|---|---|---|"]
        for r in doc["memory"]:
            rate = r["symbols"] * r["bars_per_symbol"] / r["seconds"]
            out.append(f"| {r['bars_per_symbol']:,} bars per symbol, {r['mode']} | "
                       f"{r['peak_rss_mb']:,.0f} MB | {rate / 1e6:.2f} M |")
        out.append("")
    if doc["targets"]:
        out += ["| target (issues 7, 29) | measured | |", "|---|---|---|"]
        out += [f"| {t['target']} | {'n/a' if t['value'] is None else format(t['value'], '.2f')} | "
                f"{'met' if t['met'] else 'missed'} |" for t in doc["targets"]]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (seconds)")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    parser.add_argument("--only", choices=["1", "2"], help="run only the 1st or 2nd size")
    parser.add_argument("--out", type=Path, default=RESULTS / "peers.json")
    parser.add_argument("--markdown", type=Path, metavar="JSON",
                        help="print the README tables of an earlier run's JSON and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown(json.loads(args.markdown.read_text())), end="")
        return 0
    plan = QUICK if args.quick else FULL
    cases = plan.cases if not args.only else [plan.cases[int(args.only) - 1]]
    warm = make_data(2, 400, seed=99)
    rows: list[dict] = []
    try:
        for case in cases:
            print(f"{case.label}:", flush=True)
            rows.extend(run_case(case, plan, warm))
        scaling: list[dict] = []
        if not args.skip_scaling:
            print(f"scaling, SMA cross, {plan.scaling.label}:", flush=True)
            scaling = run_scaling(plan.scaling.n_symbols, plan.scaling.n_bars, plan.repeat,
                                  plan.scaling.label)
        memory: list[dict] = []
        if not args.skip_memory:
            print(f"memory, SMA cross, {plan.memory_symbols} symbols, streaming replay from "
                  "the Parquet catalog:", flush=True)
            memory = run_memory(plan.memory_symbols, plan.memory_bars)
    except CheckFailed as exc:
        print(f"\nCHECK FAILED: {exc}", file=sys.stderr)
        return 1
    print_rows(rows)
    # the targets of the sizes that ran (--only 1 still gives issue 29's rows)
    goals = [g for g in targets(rows, scaling, memory, plan) if g["value"] is not None]
    if goals:
        print(f"\ntargets (issues 7, 29){' - quick sizes, not meaningful' if args.quick else ''}:")
        for g in goals:
            value = "n/a" if g["value"] is None else f"{g['value']:.2f}"
            print(f"  {'met   ' if g['met'] else 'MISSED'} {g['target']}: {value}")
    write_results(args.out, {
        "command": "python bench/peers.py" + (" --quick" if args.quick else ""),
        **machine(), "quick": args.quick,
        "rows": rows, "scaling": scaling, "memory": memory, "targets": goals,
    })
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
