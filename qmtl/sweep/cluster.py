"""A sweep on a Bytewax cluster of processes on this host (``--processes N``).

The parent writes the job (each variant's strategy file, class and parameters; where the
bars are) to a folder and starts N processes of ``python -m qmtl.sweep.cluster JOB I ADDRS``
with addresses on 127.0.0.1. Each process is worker ``I`` of one Bytewax cluster
(``cluster_main(flow, addresses, I)``): it loads the strategy file, reads the bars it needs
from the catalog itself (in-memory bars are saved once to the job folder), runs its share of
the variants, and the cluster gathers the variants' results on one process, which writes
them back. For several hosts, run ``qmtl sweep ... --addresses A0,A1,... --process-id I`` on
each host instead (see ``docs/sweeps.md``).

>>> free_ports(2)[0] > 0
True
"""

from __future__ import annotations

import inspect
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from connectors.data.seamless import SeamlessDataProvider
from dataflows.sweep_flow import SweepStats, VariantRun
from qmtl.core.bars import Batch
from qmtl.core.errors import QmtlError
from qmtl.loader import load_strategy
from qmtl.runner import make_strategy
from qmtl.sources import as_provider
from qmtl.sweep.plan import Plan, run_plan
from qmtl.sweep.result import SweepError

OVERRIDES = ("symbols", "cost_bps", "max_gross", "warmup")
"""Instance attributes a variant may carry besides its parameters."""


def free_ports(n: int) -> list[int]:
    """``n`` distinct TCP ports free on 127.0.0.1 right now."""
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _class_ref(cls: type) -> tuple[str, str]:
    try:
        path = inspect.getfile(cls)
    except TypeError:
        path = ""
    if not path or "." in cls.__qualname__ or not Path(path).is_file():
        raise SweepError(f"--processes needs {cls.__name__} defined at the top level of a "
                         "file (each process loads the strategy file itself)")
    return path, cls.__qualname__


def write_job(folder: Path, plan: Plan, source: SeamlessDataProvider | Mapping[str, Batch],
              workers: int) -> Path:
    """Write what every process needs to rebuild ``plan`` and read the bars: the job file."""
    variants = []
    for s in plan.strategies:
        params = {k: getattr(s, k) for k in type(s).parameters()}
        extra = {k: getattr(s, k) for k in OVERRIDES}
        extra["symbols"] = list(extra["symbols"])
        variants.append((*_class_ref(type(s)), params, extra))
    if isinstance(source, Mapping):
        np.savez(folder / "bars.npz", **{f"{sym}/{c}": np.asarray(v)
                                          for sym in plan.universe
                                          for c, v in source[sym].items()})
        data: dict[str, Any] = {"kind": "memory", "path": str(folder / "bars.npz")}
    else:
        data = {"kind": "catalog", "root": str(source.catalog.root)}
    fields = {k: getattr(plan, k) for k in ("params", "universe", "interval", "start", "end",
                                            "batch_size", "periods_per_year", "on_bad_bars",
                                            "metrics_every")}
    job = folder / "job.pkl"
    job.write_bytes(pickle.dumps({"variants": variants, "plan": fields, "data": data,
                                  "workers": workers}))
    return job


def read_job(job: Path) -> tuple[Plan, SeamlessDataProvider | Mapping[str, Batch], int]:
    """The plan, the bars' source and the workers per process of a job file."""
    doc = pickle.loads(job.read_bytes())
    classes: dict[tuple[str, str], Any] = {}
    strategies = []
    for path, name, params, extra in doc["variants"]:
        cls = classes.get((path, name)) or load_strategy(f"{path}:{name}")
        classes[(path, name)] = cls
        s = make_strategy(cls, params)
        for key, value in extra.items():
            setattr(s, key, value)
        strategies.append(s)
    data = doc["data"]
    source: SeamlessDataProvider | Mapping[str, Batch]
    if data["kind"] == "memory":
        with np.load(data["path"]) as z:
            bars: dict[str, dict[str, np.ndarray]] = {}
            for key in z.files:
                sym, col = key.split("/")
                bars.setdefault(sym, {})[col] = z[key]
        source = bars
    else:
        source = as_provider(data["root"])
    return Plan(strategies, **doc["plan"]), source, doc["workers"]


def run_processes(
    plan: Plan, source: SeamlessDataProvider | Mapping[str, Batch], processes: int,
    workers: int, on_start: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[VariantRun], SweepStats]:
    """Run ``plan`` on a cluster of ``processes`` local processes (``workers`` each); the
    gathered runs and the stats summed over the processes."""
    with tempfile.TemporaryDirectory(prefix="qmtl-sweep-") as tmp:
        folder = Path(tmp)
        job = write_job(folder, plan, source, workers)
        addresses = [f"127.0.0.1:{p}" for p in free_ports(processes)]
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        procs = [subprocess.Popen([sys.executable, "-m", "qmtl.sweep.cluster", str(job),
                                   str(i), ",".join(addresses)], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                 for i in range(processes)]
        if on_start is not None:
            on_start(0)
        errors = []
        for i, p in enumerate(procs):
            while p.poll() is None:
                time.sleep(0.05)
            err = folder / f"error{i}.txt"
            if err.exists():
                errors.append(err.read_text())
            elif p.returncode != 0:
                tail = (p.stderr.read() if p.stderr else b"").decode(errors="replace")
                errors.append(f"process {i} exited with {p.returncode}: {tail[-2000:]}")
        for p in procs:
            if p.stderr:
                p.stderr.close()
        if errors:
            raise SweepError(errors[0])
        stats = SweepStats()
        for i in range(processes):
            part: SweepStats = pickle.loads((folder / f"stats{i}.pkl").read_bytes())
            stats.nodes_evaluated += part.nodes_evaluated
            stats.nodes_per_variant = part.nodes_per_variant
            stats.kernel_calls += part.kernel_calls
            stats.shards += part.shards
            stats.seen = stats.seen or part.seen
            stats.flow_seconds = max(stats.flow_seconds, part.flow_seconds)
        runs: list[VariantRun] = pickle.loads((folder / "runs.pkl").read_bytes())
    return runs, stats


def child(job: Path, process_id: int, addresses: list[str]) -> int:
    """One process of the cluster (see the module docstring); exit status 0 or 1."""
    folder = job.parent
    try:
        plan, source, workers = read_job(job)
        runs, stats = run_plan(plan, source, workers=workers, addresses=addresses,
                               process_id=process_id)
    except QmtlError as exc:
        (folder / f"error{process_id}.txt").write_text(str(exc))
        return 1
    (folder / f"stats{process_id}.pkl").write_bytes(pickle.dumps(stats))
    if runs is not None:
        (folder / "runs.pkl").write_bytes(pickle.dumps(runs))
    return 0


if __name__ == "__main__":
    sys.exit(child(Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3].split(",")))
