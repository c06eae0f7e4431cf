"""kill -9 of a live run at random points, restarted with the same recovery directory, ends
where an uninterrupted run ends: the same per-bar rows, metrics, orders, fills and positions,
and the world has every MetricsUpdate's returns once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest

from connectors.live.order_store import open_order_store
from tests.e2e.live_helpers import (
    activate,
    make_data,
    publish,
    read_json,
    topic_name,
    wait_for,
)
from tests.world_api.conftest import serve
from world_api.service.app import create_app
from world_api.service.store import open_store

ROOT = Path(__file__).resolve().parents[2]
STRATEGY = """
from tests.e2e.live_helpers import Cross as _Cross


class Cross(_Cross):  # the live tests' strategy, in a file of its own for `qmtl run`
    pass
"""
N = 400  # bars per symbol
DATA = make_data(N, seed=11)


class Live:
    """``qmtl run --mode live`` in a subprocess, with what it printed."""

    def __init__(self, args: list[str]) -> None:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get(
            "PYTHONPATH", "")])}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from qmtl.cli import main; main()", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=ROOT,
        )
        self.lines: list[str] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def trading(self) -> bool:
        """It has started processing bars (it printed an order or a fill)."""
        return any(line.startswith(("order", "fill")) for line in self.lines)

    def output(self) -> str:
        self.thread.join(5)
        return "".join(self.lines)


def run_args(tmp: Path, name: str, brokers: str, topic: str, url: str) -> list[str]:
    return [
        "run", "--mode", "live", str(tmp / "cross.py"), "--brokers", brokers, "--topic", topic,
        "--world", name, "--url", url, "--paper", "--warmup", "0",
        "--max-bars", str(2 * N), "--recovery-dir", str(tmp / name / "recovery"),
        "--snapshot-interval", "0.2", "--out", str(tmp / name / "out"),
        "--orders-store", str(tmp / name / "orders.db"), "--data", str(tmp / "no-catalog"),
    ]


def crash_and_resume(args: list[str], kills: int, rng: random.Random) -> int:
    """Start, kill -9 at a random moment after it started, ``kills`` times; then let it end.
    Returns how many kills hit a running flow."""
    hit, resumed = 0, []
    for _ in range(kills):
        live = Live(args)
        assert wait_for(lambda live=live: live.trading() or live.proc.poll() is not None, 60), (
            live.output())
        time.sleep(rng.uniform(0.0, 0.5))
        if live.proc.poll() is None:
            live.proc.send_signal(signal.SIGKILL)
            hit += 1
        live.proc.wait(30)
        resumed += [line for line in live.lines if "resuming from the last snapshot" in line]
    final = Live(args)
    assert final.proc.wait(120) == 0, final.output()
    resumed += [line for line in final.lines if "resuming from the last snapshot" in line]
    # restarts resumed from snapshots part-way, not from the start of the topic
    done = [int(line.split(": ")[1].split()[0]) for line in resumed]
    assert any(0 < d < 2 * N for d in done), resumed
    return hit


def outcome(tmp: Path, name: str, strategy: str = "Cross") -> dict:
    """What run ``name`` left: its metrics, rows, orders, fills and ``strategy``'s positions."""
    store = open_order_store(str(tmp / name / "orders.db"))
    try:
        return {
            "metrics": read_json(tmp / name / "out" / "metrics.json"),
            "bars": pq.read_table(tmp / name / "out" / "bars.parquet"),
            "orders": [(o.symbol, o.ts, o.target_weight, o.target_qty)
                       for o in store.orders(name)],
            "fills": [(f.symbol, f.ts, f.qty, f.price) for f in store.fills(name)],
            "positions": store.positions(name, strategy),
        }
    finally:
        store.close()


def check_same(a: dict, b: dict) -> None:
    ma, mb = a["metrics"], b["metrics"]
    assert ma["n_bars"] == mb["n_bars"] == N
    for k, v in ma["metrics"].items():
        assert mb["metrics"][k] == pytest.approx(v, rel=1e-12, abs=1e-15), k
    ta, tb = a["bars"], b["bars"]
    assert ta.num_rows == tb.num_rows == 2 * N  # no row lost, none written twice
    assert ta.column("ts").to_pylist() == tb.column("ts").to_pylist()
    assert ta.column("symbol").to_pylist() == tb.column("symbol").to_pylist()
    for c in ("weight", "return", "equity"):
        assert np.max(np.abs(ta.column(c).to_numpy() - tb.column(c).to_numpy())) <= 1e-12, c
    assert len(a["orders"]) == len(b["orders"]) > 10
    for x, y in zip(a["orders"], b["orders"], strict=True):
        assert x[:2] == y[:2] and x[2:] == pytest.approx(y[2:], rel=1e-12)
    assert len(a["fills"]) == len(b["fills"])
    for x, y in zip(a["fills"], b["fills"], strict=True):
        assert x[:2] == y[:2] and x[2:] == pytest.approx(y[2:], rel=1e-12)
    assert a["positions"].keys() == b["positions"].keys()
    for k, v in a["positions"].items():
        assert b["positions"][k] == pytest.approx(v, rel=1e-12)


def crash_test(kafka, tmp_path: Path, kills: int, seed: int, speed: str) -> None:
    (tmp_path / "cross.py").write_text(STRATEGY)
    topic = topic_name()
    db = str(tmp_path / "world.db")
    app = create_app(db, insecure_dev=True)
    with serve(app) as url:
        for name in ("ref", "crash"):
            assert httpx.post(f"{url}/worlds", json={"id": name}).status_code == 201
            activate(url, name, "Cross")
        # bars arrive while the crashing run works and is killed
        publisher = threading.Thread(target=publish, args=(kafka.brokers, topic, DATA, speed))
        publisher.start()
        hit = crash_and_resume(run_args(tmp_path, "crash", kafka.brokers, topic, url), kills,
                               random.Random(seed))
        publisher.join()
        ref = Live(run_args(tmp_path, "ref", kafka.brokers, topic, url))
        assert ref.proc.wait(120) == 0, ref.output()
        views = {n: httpx.get(f"{url}/worlds/{n}/strategies/Cross").json()
                 for n in ("ref", "crash")}
    assert hit >= kills // 2, f"only {hit} of {kills} kills hit a running flow"
    check_same(outcome(tmp_path, "ref"), outcome(tmp_path, "crash"))
    # the world saw the same run: its n_bars, and each bar's return exactly once
    assert views["crash"]["n_bars"] == views["ref"]["n_bars"] == N
    store = open_store(db)
    rings = {n: list(store.load_engine(n).strategies["Cross"].returns) for n in ("ref", "crash")}
    assert len(rings["crash"]) == len(rings["ref"]) == N
    assert np.max(np.abs(np.array(rings["crash"]) - np.array(rings["ref"]))) <= 1e-12


def test_kill_9_at_random_points_loses_and_repeats_nothing(kafka, tmp_path):
    crash_test(kafka, tmp_path, kills=5, seed=5, speed="30/s")  # ~13 s of bars


@pytest.mark.slow
def test_kill_9_many_times(kafka, tmp_path):
    crash_test(kafka, tmp_path, kills=20, seed=20, speed="6/s")  # ~67 s of bars
