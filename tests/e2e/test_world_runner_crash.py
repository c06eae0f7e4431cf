"""kill -9 of a world runner (``qmtl world run``, a subprocess) at random points of its
progress, restarted with the same ``--state-dir``, ends where one uninterrupted
``qmtl run --mode live`` of the same strategy ends: the same rows, metrics, orders, fills
and positions, and the world has each bar's return once. The runner rebuilt the strategy
from the artifact the world holds; the reference ran the developer's file."""

from __future__ import annotations

import random
import textwrap
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest

from connectors.live.order_store import open_order_store
from qmtl.artifact import build_artifact
from qmtl.live.world_runner import run_dir_name
from qmtl.loader import load_strategy
from tests.e2e.live_helpers import (
    Live,
    activate,
    crash_and_resume,
    make_data,
    outcome,
    read_json,
    topic_name,
)
from tests.e2e.test_live_crash import check_same, run_args
from tests.world_api.conftest import serve
from world_api import runner_client as rc
from world_api.client import WorldServiceClient
from world_api.service.app import create_app
from world_api.service.store import open_store

SOURCE = textwrap.dedent("""
    from qmtl import Strategy

    class Cross(Strategy):
        symbols = ["AAA", "BBB"]
        fast: int = 3
        slow: int = 8

        def signal(self, bars):
            return bars.close.sma(self.fast) > bars.close.sma(self.slow)
""")
N = 400
DATA = make_data(N, seed=11)


def runner_args(tmp: Path, brokers: str, topic: str, url: str) -> list[str]:
    return [
        "world", "run", "crash", "--url", url, "--brokers", brokers, "--topic", topic,
        "--paper", "--warmup", "0", "--data", str(tmp / "no-catalog"),
        "--state-dir", str(tmp / "state"), "--runner-id", "r1", "--heartbeat", "0.3",
        "--ttl", "5", "--snapshot-interval", "0.2", "--max-bars", str(2 * N), "--until-done",
    ]  # fmt: skip


def runner_outcome(tmp: Path, world: str, strategy: str) -> dict:
    """What the runner's run of ``strategy`` left in its folder."""
    folder = tmp / "state" / "runs" / run_dir_name(strategy)
    store = open_order_store(str(folder / "orders.db"))
    try:
        return {
            "metrics": read_json(folder / "out" / "metrics.json"),
            "bars": pq.read_table(folder / "out" / "bars.parquet"),
            "orders": [
                (o.symbol, o.ts, o.target_weight, o.target_qty) for o in store.orders(world)
            ],
            "fills": [(f.symbol, f.ts, f.qty, f.price) for f in store.fills(world)],
            "positions": store.positions(world, strategy),
        }
    finally:
        store.close()


def crash_test(kafka, tmp_path: Path, kills: int, seed: int) -> None:
    (tmp_path / "cross.py").write_text(SOURCE)
    doc = build_artifact(load_strategy(f"{tmp_path / 'cross.py'}:Cross")(), "Cross")
    topic = topic_name()
    db = str(tmp_path / "world.db")
    with serve(create_app(db, insecure_dev=True)) as url:
        for name in ("ref", "crash"):
            assert httpx.post(f"{url}/worlds", json={"id": name}).status_code == 201
            activate(url, name, "Cross")  # a world without stages: the runner runs it
        with WorldServiceClient(url) as c:
            rc.put_artifact(c, "crash", doc)
        done = crash_and_resume(
            runner_args(tmp_path, kafka.brokers, topic, url), data=DATA,
            brokers=kafka.brokers, topic=topic, url=url, world="crash", strategy_id="Cross",
            kills=kills, rng=random.Random(seed),
        )  # fmt: skip
        ref = Live(run_args(tmp_path, "ref", kafka.brokers, topic, url))
        assert ref.wait() == 0, ref.output()
        views = {
            n: httpx.get(f"{url}/worlds/{n}/strategies/Cross").json() for n in ("ref", "crash")
        }
        with WorldServiceClient(url) as c:
            assert rc.runners(c, "crash") == []  # the last runner gave its lease back
    assert len(done) == kills and any(0 < d < 2 * N for d in done), done
    check_same(runner_outcome(tmp_path, "crash", "Cross"), outcome(tmp_path, "ref", "Cross"))
    # (the paper record sums its runs: activate()'s one bar, then the run's N; a resumed
    # strategy keeps its run id, so its bars are not counted twice)
    assert views["crash"]["n_bars"] == views["ref"]["n_bars"] == N + 1
    assert len(views["crash"]["records"]["paper"]["runs"]) == 2
    store = open_store(db)
    rings = {n: list(store.load_engine(n).strategies["Cross"].returns) for n in ("ref", "crash")}
    assert len(rings["crash"]) == len(rings["ref"]) == N
    assert np.max(np.abs(np.array(rings["crash"]) - np.array(rings["ref"]))) <= 1e-12


def test_kill_9_of_the_runner_loses_and_repeats_nothing(kafka, tmp_path):
    crash_test(kafka, tmp_path, kills=2, seed=7)


@pytest.mark.slow
def test_kill_9_of_the_runner_many_times(kafka, tmp_path):
    crash_test(kafka, tmp_path, kills=8, seed=21)
