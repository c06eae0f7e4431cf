"""kill -9 of a live run at random points, restarted with the same recovery directory, ends
where an uninterrupted run ends: the same per-bar rows, metrics, orders, fills and positions,
and the world has every MetricsUpdate's returns once."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.e2e.live_helpers import (
    Live,
    activate,
    crash_and_resume,
    make_data,
    outcome,
    topic_name,
)
from tests.world_api.conftest import serve
from world_api.service.app import create_app
from world_api.service.store import open_store

STRATEGY = """
from tests.e2e.live_helpers import Cross as _Cross


class Cross(_Cross):  # the live tests' strategy, in a file of its own for `qmtl run`
    pass
"""
N = 400  # bars per symbol
DATA = make_data(N, seed=11)


def run_args(tmp: Path, name: str, brokers: str, topic: str, url: str) -> list[str]:
    return [
        "run", "--mode", "live", str(tmp / "cross.py"), "--brokers", brokers, "--topic", topic,
        "--world", name, "--url", url, "--paper", "--warmup", "0",
        "--max-bars", str(2 * N), "--recovery-dir", str(tmp / name / "recovery"),
        "--snapshot-interval", "0.2", "--out", str(tmp / name / "out"),
        "--orders-store", str(tmp / name / "orders.db"), "--data", str(tmp / "no-catalog"),
    ]


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


def crash_test(kafka, tmp_path: Path, kills: int, seed: int) -> None:
    (tmp_path / "cross.py").write_text(STRATEGY)
    topic = topic_name()
    db = str(tmp_path / "world.db")
    app = create_app(db, insecure_dev=True)
    with serve(app) as url:
        for name in ("ref", "crash"):
            assert httpx.post(f"{url}/worlds", json={"id": name}).status_code == 201
            activate(url, name, "Cross")
        # bars arrive in chunks while the crashing run works and is killed
        done = crash_and_resume(run_args(tmp_path, "crash", kafka.brokers, topic, url),
                                data=DATA, brokers=kafka.brokers, topic=topic, url=url,
                                world="crash", strategy_id="Cross", kills=kills,
                                rng=random.Random(seed))
        ref = Live(run_args(tmp_path, "ref", kafka.brokers, topic, url))
        assert ref.wait() == 0, ref.output()
        views = {n: httpx.get(f"{url}/worlds/{n}/strategies/Cross").json()
                 for n in ("ref", "crash")}
    # every kill hit a running flow, and restarts resumed from snapshots part-way, not from
    # the start of the topic
    assert len(done) == kills and any(0 < d < 2 * N for d in done), done
    check_same(outcome(tmp_path, "ref", "Cross"), outcome(tmp_path, "crash", "Cross"))
    # the world saw the same run: its n_bars, and each bar's return exactly once
    # (the paper record sums its runs: activate()'s one bar, then the run's N; a resumed run
    # keeps its run id, so its bars are not counted twice)
    assert views["crash"]["n_bars"] == views["ref"]["n_bars"] == N + 1
    assert len(views["crash"]["records"]["paper"]["runs"]) == 2
    store = open_store(db)
    rings = {n: list(store.load_engine(n).strategies["Cross"].returns) for n in ("ref", "crash")}
    assert len(rings["crash"]) == len(rings["ref"]) == N
    assert np.max(np.abs(np.array(rings["crash"]) - np.array(rings["ref"]))) <= 1e-12


def test_kill_9_at_random_points_loses_and_repeats_nothing(kafka, tmp_path):
    crash_test(kafka, tmp_path, kills=3, seed=5)


@pytest.mark.slow
def test_kill_9_many_times(kafka, tmp_path):
    crash_test(kafka, tmp_path, kills=12, seed=20)
