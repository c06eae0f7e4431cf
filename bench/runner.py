"""A world of N strategies run by one ``qmtl world run`` against N separate
``qmtl run --mode live`` processes on the same feed (the catalog of minute bars, replayed in
process at full speed), CPU and memory.

    python bench/runner.py                    # 20 strategies x 20 symbols x 300 bars
    python bench/runner.py --quick            # 4 x 4 x 200
    python bench/runner.py --strategies 100 --symbols 100 --bars 300   # the issue's scale
    python bench/runner.py --sides shared,separate --sample 10   # 10 separate, scaled up

The strategies are parameter variants of an SMA cross (they share the close column and
some averages). Both sides get the same world (``qmtl world serve``, SQLite, each strategy
activated and its artifact stored), paper fills, no warm-up, one Bytewax worker per
strategy run. Measured per side, from the children's own ``rusage`` (``os.wait4``): CPU
seconds (user + system) per live bar of one strategy, and peak memory (the runner's
maximum RSS; for the separate processes, the sum of each one's maximum RSS). Bar -> target
latency is not measured here (``bench/live.py`` measures it for one run). The runner runs
each strategy as a live run of its own (``docs/live.md``): it saves the processes, not the
per-strategy computation; with ``--shared`` (side ``shared``) it runs them as one
shared-feed group: one feed reader and one flow, each distinct node computed once per symbol.
``--sample K`` runs only K of the separate processes and scales their CPU and memory by
N / K (each is the same work on the same feed: the sum is linear in N). Prints a table and
writes ``bench/results/runner.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import RESULTS, machine, make_data, print_table, write_results  # noqa: E402
from connectors.data.catalog import Catalog  # noqa: E402
from qmtl.artifact import build_artifact  # noqa: E402
from qmtl.live.world_runner import run_dir_name  # noqa: E402
from qmtl.loader import load_strategy  # noqa: E402
from world_api import runner_client as rc  # noqa: E402
from world_api.client import WorldServiceClient  # noqa: E402

SOURCE = """
from qmtl import Strategy


class Cross(Strategy):
    interval = "1m"
    fast: int = 5
    slow: int = 30

    def signal(self, bars):
        return bars.close.sma(self.fast) > bars.close.sma(self.slow)
"""


def cli(*args: str, **kw: Any) -> subprocess.Popen:
    """``qmtl ARGS`` in a subprocess (output discarded unless ``kw`` says otherwise).

    >>> callable(cli)
    True
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.DEVNULL)
    return subprocess.Popen(
        [sys.executable, "-c", "from qmtl.cli import main; main()", *args], env=env, cwd=ROOT, **kw
    )


def reap(procs: list[subprocess.Popen]) -> dict[str, float]:
    """Wait for ``procs``; their CPU seconds (user + system) and the sum of their peak RSS
    (MB), from each one's own rusage.

    >>> reap([])
    {'cpu_s': 0.0, 'rss_mb': 0.0}
    """
    cpu = rss = 0.0
    for p in procs:
        _, status, use = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        if p.returncode != 0:
            raise SystemExit(f"{p.args[3:6]} exited {p.returncode}")
        cpu += use.ru_utime + use.ru_stime
        rss += use.ru_maxrss / 1024  # KiB on Linux
    return {"cpu_s": cpu, "rss_mb": rss}


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strategies", type=int, default=20)
    ap.add_argument("--symbols", type=int, default=20)
    ap.add_argument("--bars", type=int, default=300)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--sides", default="threads,shared,separate",
                    help="which of threads (world run), shared (world run --shared), separate")
    ap.add_argument("--sample", type=int, default=None,
                    help="run only this many separate processes and scale up (see above)")
    a = ap.parse_args(argv)
    sides = a.sides.split(",")
    if a.quick:
        a.strategies, a.symbols, a.bars = 4, 4, 200
    tmp = Path(tempfile.mkdtemp(prefix="qmtl-bench-runner-"))
    catalog = Catalog(tmp / "catalog")
    data = make_data(a.symbols, a.bars)
    for s, b in data.items():
        catalog.write(s, "1m", b)
    symbols = sorted(data)
    (tmp / "cross.py").write_text(SOURCE)
    cross = load_strategy(f"{tmp / 'cross.py'}:Cross")
    params = [(2 + i % 10, 20 + 5 * (i // 10)) for i in range(a.strategies)]
    sids = [f"x{i:03d}" for i in range(a.strategies)]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = cli("world", "serve", "--insecure-dev", "--port", str(port), "--store",
                 str(tmp / "world.db"))  # fmt: skip
    try:
        for _ in range(300):
            try:
                httpx.get(f"{url}/worlds", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        with WorldServiceClient(url) as c:
            for world in ("one", "shared", "many"):
                c.create_world(world)
                c.put_policy(world, f"top_k: {a.strategies}\n")  # the default activates 10
                for sid in sids:
                    c.call(
                        "POST",
                        f"/worlds/{world}/metrics",
                        json=[
                            {
                                "world": world,
                                "strategy_id": sid,
                                "run_id": "pre",
                                "seq": 1,
                                "mode": "paper",
                                "as_of": 0,
                                "n_bars": 1,
                                "metrics": {"sharpe": 1.0},
                            }
                        ],
                    )
            for sid, (fast, slow) in zip(sids, params, strict=True):
                for world in ("one", "shared"):
                    rc.put_artifact(c, world, build_artifact(cross(fast=fast, slow=slow), sid,
                                                             symbols))
        live_bars = a.symbols * a.bars
        common = ["--paper", "--data", str(tmp / "catalog"), "--speed", "max", "--warmup", "0",
                  "--max-bars", str(live_bars), "--url", url]  # fmt: skip
        rows, doc = [], {}
        runner_sides = {"threads": ("one", []), "shared": ("shared", ["--shared"])}
        for side in [s for s in sides if s in runner_sides]:
            world, extra = runner_sides[side]
            t0 = time.perf_counter()
            one = cli("world", "run", world, "--state-dir", str(tmp / side), "--heartbeat",
                      "0.5", "--until-done", *extra, *common)  # fmt: skip
            got = reap([one])
            got["wall_s"] = time.perf_counter() - t0
            doc[side] = got
        sample = min(a.sample or a.strategies, a.strategies)
        if "separate" in sides:
            t0 = time.perf_counter()
            many = [
                cli("run", "--mode", "live", str(tmp / "cross.py"), "-p", f"fast={f}", "-p",
                    f"slow={s}", "--symbols", ",".join(symbols), "--world", "many",
                    "--id", sid, "--recovery-dir", str(tmp / "many" / sid),
                    "--out", str(tmp / "many" / sid / "out"), *common)
                for sid, (f, s) in list(zip(sids, params, strict=True))[:sample]
            ]  # fmt: skip
            got = reap(many)
            got["wall_s"] = time.perf_counter() - t0
            got["sampled"] = sample
            scale = a.strategies / sample
            got["cpu_s"], got["rss_mb"] = got["cpu_s"] * scale, got["rss_mb"] * scale
            doc["separate"] = got
        for sid in sids:  # each side ran every bar of every strategy, with the same returns
            found = {}
            for side in [s for s in sides if s in runner_sides]:
                pattern = f"runs/{run_dir_name(sid)}/out/metrics.json" if side == "threads" \
                    else f"groups/*/out/{run_dir_name(sid)}/metrics.json"
                [path] = list((tmp / side).glob(pattern))
                found[side] = json.loads(path.read_text())
            theirs = tmp / "many" / sid / "out" / "metrics.json"
            if theirs.is_file():
                found["separate"] = json.loads(theirs.read_text())
            ref = next(iter(found.values()))
            for side, mine in found.items():
                if mine["n_bars"] != a.bars or mine["metrics"] != ref["metrics"]:
                    raise SystemExit(f"{sid}: the {side} run differs")
        per = a.strategies * live_bars
        for side in [s for s in ("threads", "shared", "separate") if s in doc]:
            d = doc[side]
            d["cpu_ms_per_strategy_bar"] = 1000 * d["cpu_s"] / per
            rows.append([side, f"{d['cpu_s']:.1f}", f"{d['cpu_ms_per_strategy_bar']:.3f}",
                         f"{d['rss_mb']:.0f}", f"{d['wall_s']:.1f}"])  # fmt: skip
        ratio = {}
        for side in [s for s in ("threads", "shared") if s in doc and "separate" in doc]:
            ratio[side] = {k: doc["separate"][k] / doc[side][k] for k in ("cpu_s", "rss_mb")}
            rows.append([f"separate / {side}", f"{ratio[side]['cpu_s']:.2f}x", "",
                         f"{ratio[side]['rss_mb']:.2f}x", ""])  # fmt: skip
        print_table(
            f"{a.strategies} strategies x {a.symbols} symbols x {a.bars} 1m bars"
            + (f" (separate: {sample} run, scaled x{a.strategies / sample:g})"
               if "separate" in doc and sample < a.strategies else ""),
            ["side", "CPU s", "CPU ms / strategy-bar", "peak RSS MB", "wall s"],
            rows,
        )
        doc.update(scale=vars(a), ratio=ratio, machine=machine())
        print(write_results(RESULTS / "runner.json", doc))
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
