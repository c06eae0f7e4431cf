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

import errno
import inspect
import os
import pickle
import resource
import signal
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


CONNECT_TIMEOUT = 60.0
"""Seconds the processes of a local cluster may keep failing to connect to each other
(``$QMTL_CLUSTER_CONNECT_TIMEOUT``) before the sweep stops them and says why."""
RETRYING = "error connecting to worker"
"""What a Bytewax (timely) process prints, once a second, while it cannot reach a peer."""


def run_processes(
    plan: Plan, source: SeamlessDataProvider | Mapping[str, Batch], processes: int,
    workers: int, on_start: Callable[[int], None] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[list[VariantRun], SweepStats]:
    """Run ``plan`` on a cluster of ``processes`` local processes (``workers`` each); the
    gathered runs and the stats summed over the processes. The processes are watched
    together: when one fails (it cannot bind its port, it runs out of file descriptors...)
    the others are stopped at once (they would wait for it forever), and when they keep
    failing to connect for ``CONNECT_TIMEOUT`` seconds they are stopped too; either way a
    :class:`SweepError` says what the failing process said."""
    with tempfile.TemporaryDirectory(prefix="qmtl-sweep-") as tmp:
        folder = Path(tmp)
        job = write_job(folder, plan, source, workers)
        root = str(Path(__file__).resolve().parents[2])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [root, *filter(None, [os.environ.get("PYTHONPATH")])])}
        procs: list[subprocess.Popen[bytes]] = []
        logs = [folder / f"stderr{i}.txt" for i in range(processes)]
        try:
            addresses = [f"127.0.0.1:{p}" for p in free_ports(processes)]
            for i in range(processes):
                with logs[i].open("wb") as log:  # a file, not a pipe nobody reads meanwhile
                    procs.append(subprocess.Popen(
                        [sys.executable, "-m", "qmtl.sweep.cluster", str(job), str(i),
                         ",".join(addresses)], env=env, stdout=subprocess.DEVNULL,
                        stderr=log))
        except OSError as exc:
            stop(procs)
            raise SweepError(f"could not start the sweep's {processes} processes: "
                             f"{_os_error(exc)}") from None
        if on_start is not None:
            on_start(0)
        error = watch(procs, logs, _connect_timeout())
        if error is not None:
            raise SweepError(error)
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


def _connect_timeout() -> float:
    text = os.environ.get("QMTL_CLUSTER_CONNECT_TIMEOUT")
    if not text:
        return CONNECT_TIMEOUT
    try:
        return float(text)
    except ValueError:
        raise SweepError(f"QMTL_CLUSTER_CONNECT_TIMEOUT must be seconds, got {text!r}") from None


def _os_error(exc: OSError) -> str:
    """``exc`` in words, with the file limit when it is what ran out."""
    said = exc.strerror or str(exc)
    if exc.errno in (errno.EMFILE, errno.ENFILE):
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        said += f" (this process may open {soft}; raise it with `ulimit -n`)"
    return said


def stop(procs: list[subprocess.Popen[bytes]], grace: float = 2.0) -> None:
    """Terminate the processes still running, then kill those still there after ``grace``
    seconds; wait for all.

    >>> p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    >>> stop([p]); p.returncode is not None
    True
    """
    for p in procs:
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace
    for p in procs:
        try:
            p.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def tail(log: Path, lines: int = 3) -> str:
    """The last ``lines`` lines of a process's stderr worth showing (not Python's warnings
    about how the module was started).

    >>> import tempfile
    >>> f = Path(tempfile.mkdtemp()) / "e.txt"
    >>> _ = f.write_text("x.py:1: RuntimeWarning: noise\\nTraceback\\nOSError: boom\\n")
    >>> tail(f)
    'Traceback\\nOSError: boom'
    """
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    kept = [ln.rstrip() for ln in text.splitlines()
            if ln.strip() and "RuntimeWarning" not in ln and not ln.startswith("  ")]
    return "\n".join(kept[-lines:])


def watch(procs: list[subprocess.Popen[bytes]], logs: list[Path],
          connect_timeout: float) -> str | None:
    """Wait for the processes of a cluster; None when all exit 0, else what went wrong (the
    others are stopped): the first to fail, with its error file or the end of its stderr;
    or processes still retrying to reach a peer after ``connect_timeout`` seconds.

    >>> import tempfile
    >>> d = Path(tempfile.mkdtemp())
    >>> logs = [d / "stderr0.txt"]
    >>> with logs[0].open("wb") as log:
    ...     p = subprocess.Popen([sys.executable, "-c", "raise SystemExit('no port')"],
    ...                          stderr=log)
    >>> watch([p], logs, 60.0)
    'process 0 of the cluster exited with status 1: no port'
    """
    started = time.monotonic()
    while True:
        codes = [p.poll() for p in procs]
        bad = next((i for i, c in enumerate(codes) if c not in (None, 0)), None)
        if bad is not None:
            stop(procs)
            return _failure(bad, procs[bad].returncode, logs[bad])
        if all(c == 0 for c in codes):
            return None
        waited = time.monotonic() - started
        if waited > connect_timeout:
            for i, log in enumerate(logs):
                if codes[i] is None and _retrying(log):
                    stop(procs)
                    return (f"the cluster's processes could not connect within "
                            f"{connect_timeout:g} s (QMTL_CLUSTER_CONNECT_TIMEOUT): process "
                            f"{i}: {tail(log, 1)}")
        time.sleep(0.05)


def _retrying(log: Path) -> bool:
    """Whether a process is still retrying to connect: its stderr ends with the retry line
    and grew in the last few seconds (one line a second while it retries)."""
    try:
        fresh = time.time() - log.stat().st_mtime < 3.0
    except OSError:
        return False
    return fresh and RETRYING in tail(log, 1)


def _failure(i: int, code: int, log: Path) -> str:
    error = log.with_name(f"error{i}.txt")
    if error.exists():
        return error.read_text()
    how = (f"was killed by {signal.Signals(-code).name}" if code < 0 and
           -code in signal.valid_signals() else f"exited with status {code}")
    said = tail(log)
    soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    limit = (f" (each process may open {soft} files: with many workers raise it with "
             "`ulimit -n`)" if soft < 1024 else "")
    return f"process {i} of the cluster {how}" + (f": {said}" if said else "") + limit


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
