"""Scaling of a replay: qmtl with 1 and 2 Bytewax workers in one process, and 2 Bytewax
processes on 127.0.0.1 (``cluster_main``, one worker each): speed-up and identical results.

    python bench/scaling.py                       # SMA cross, 100 symbols x 100k bars
    python bench/scaling.py --symbols 4 --bars 2000 --repeat 1

Run by ``bench/peers.py`` (its scaling section); on its own it prints the table only.
"""

from __future__ import annotations

import argparse
import os
import pickle
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bytewax.testing import cluster_main  # noqa: E402

from bench.common import (  # noqa: E402
    Data,
    SmaCross,
    check_metrics,
    check_returns,
    free_ports,
    make_data,
    race,
    run_qmtl,
)
from connectors.data.memory import aligned_batches  # noqa: E402
from dataflows.compiler import build_flow  # noqa: E402
from dataflows.control import RunControl  # noqa: E402
from qmtl.runner import to_spec  # noqa: E402


def cluster_child(folder: Path, proc_id: int, addresses: list[str]) -> None:
    """One process of a Bytewax cluster replaying the saved data (see :func:`run_scaling`)."""
    with np.load(folder / "data.npz") as z:
        data: Data = {}
        for key in z.files:
            sym, col = key.split("/")
            data.setdefault(sym, {})[col] = z[key]
    syms = sorted(data)
    spec = to_spec(SmaCross(), syms, None)
    outputs: list[Any] = []
    control = RunControl()
    flow = build_flow([spec], lambda: aligned_batches(data, 10_000, syms), outputs.append, control)
    t0 = time.perf_counter()
    cluster_main(flow, addresses, proc_id, worker_count_per_proc=1)
    seconds = time.perf_counter() - t0
    if control.error is not None:
        raise control.error
    batches = [o.batch for o in outputs if o.batch is not None]
    returns = np.concatenate([b.returns for b in batches]) if batches else None
    metrics = [o.metrics for o in outputs if o.metrics is not None]
    with open(folder / f"out{proc_id}.pkl", "wb") as fh:
        pickle.dump({"seconds": seconds, "returns": returns,
                     "metrics": metrics[-1] if metrics else None}, fh)


def _run_cluster(folder: Path, n_procs: int) -> tuple[float, np.ndarray, dict]:
    """Run ``n_procs`` processes of :func:`cluster_child`; the best time, the returns and
    metrics of the process that owned the strategy."""
    addresses = [f"127.0.0.1:{p}" for p in free_ports(n_procs)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen([sys.executable, __file__, "--cluster-child", str(folder), str(i),
                          ";".join(addresses)], env=env)
        for i in range(n_procs)
    ]
    for p in procs:
        if p.wait(timeout=1800) != 0:
            raise RuntimeError(f"cluster process exited with {p.returncode}")
    outs = []
    for i in range(n_procs):
        with open(folder / f"out{i}.pkl", "rb") as fh:
            outs.append(pickle.load(fh))
    (owner,) = [o for o in outs if o["returns"] is not None]
    # each process times its own run; the last to join waited least for the others
    return min(o["seconds"] for o in outs), owner["returns"], owner["metrics"]


def run_scaling(
    n_symbols: int, n_bars: int, repeat: int, label: str | None = None
) -> list[dict[str, Any]]:
    """SMA cross over ``n_symbols`` x ``n_bars`` with 1 and 2 workers, then 1 and 2
    processes: best of ``repeat`` each, results checked bit for bit against 1 worker. Rows
    are labelled ``label`` (by default the sizes)."""
    label = label or f"{n_symbols} symbol{'s' if n_symbols > 1 else ''} x {n_bars:,}"
    data = make_data(n_symbols, n_bars)
    total = n_symbols * n_bars
    rows = []
    got = race({1: lambda: run_qmtl("sma_cross", data, workers=1),
                2: lambda: run_qmtl("sma_cross", data, workers=2)}, repeat)
    (t1, (r1, m1)), (t2, (r2, m2)) = got[1], got[2]
    check_returns("workers 2", r2, r1, exact=True)
    check_metrics("workers 2", m2, m1)
    rows.append({"case": label, "setup": "1 worker", "seconds": t1, "bars_per_s": total / t1,
                 "speedup": 1.0, "check": "reference"})
    rows.append({"case": label, "setup": "2 workers (1 process)", "seconds": t2,
                 "bars_per_s": total / t2, "speedup": t1 / t2, "check": "returns bit-identical"})
    with tempfile.TemporaryDirectory(prefix="qmtl-scaling-") as tmp:
        folder = Path(tmp)
        np.savez(folder / "data.npz",
                 **{f"{s}/{c}": v for s, bars in data.items() for c, v in bars.items()})
        runs: dict[int, list] = {1: [], 2: []}
        for _ in range(repeat):  # interleaved, like race()
            for n in (1, 2):
                runs[n].append(_run_cluster(folder, n))
        best = {n: min(runs[n], key=lambda x: x[0]) for n in (1, 2)}
        for n in (1, 2):
            check_returns(f"{n} processes", best[n][1], r1, exact=True)
            check_metrics(f"{n} processes", best[n][2], m1)
    for n in (1, 2):
        rows.append({"case": label, "setup": f"{n} process{'es' if n > 1 else ''} "
                     "(cluster_main, 1 worker each)", "seconds": best[n][0],
                     "bars_per_s": total / best[n][0], "speedup": best[1][0] / best[n][0],
                     "check": "reference" if n == 1 else "returns bit-identical"})
    for row in rows:
        print(f"  {row['setup']:<42} {row['bars_per_s']:>14,.0f} bars/s  "
              f"x{row['speedup']:<6.2f} {row['check']}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=100)
    parser.add_argument("--bars", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--cluster-child", nargs=3, metavar=("DIR", "ID", "ADDRS"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cluster_child:
        folder, proc_id, addrs = args.cluster_child
        cluster_child(Path(folder), int(proc_id), addrs.split(";"))
        return 0
    run_scaling(args.symbols, args.bars, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main())
