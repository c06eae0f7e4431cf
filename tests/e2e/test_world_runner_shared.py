"""``qmtl world run --shared``: two strategies that share nodes run as one group (one feed
reader, one flow); the runner is killed with ``kill -9`` at random points and restarted with
the same ``--state-dir``, and each strategy ends where its own uninterrupted
``qmtl run --mode live`` ends: the same rows, metrics, orders, fills and positions, and the
world has each bar's return once."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq

from connectors.live.order_store import open_order_store
from qmtl.artifact import build_artifact
from qmtl.live.group import group_key
from qmtl.live.world_runner import run_dir_name
from qmtl.loader import load_strategy
from tests.e2e.live_helpers import Live, activate, crash_and_resume, read_json, topic_name
from tests.e2e.test_live_crash import check_same, run_args
from tests.e2e.test_world_runner_crash import DATA, SOURCE, N, runner_args
from tests.world_api.conftest import serve
from world_api import runner_client as rc
from world_api.client import WorldServiceClient
from world_api.service.app import create_app
from world_api.service.store import open_store


def left(store_path: Path, out: Path, world: str, strategy: str) -> dict:
    """What a run left for ``strategy``: its out folder and its rows in the order store."""
    store = open_order_store(str(store_path))
    try:
        return {
            "metrics": read_json(out / "metrics.json"),
            "bars": pq.read_table(out / "bars.parquet"),
            "orders": [(o.symbol, o.ts, o.target_weight, o.target_qty)
                       for o in store.orders(world, strategy)],
            "fills": [(f.symbol, f.ts, f.qty, f.price) for f in store.fills(world, strategy)],
            "positions": store.positions(world, strategy),
        }
    finally:
        store.close()


def test_kill_9_of_a_shared_runner_loses_and_repeats_nothing(kafka, tmp_path):
    (tmp_path / "cross.py").write_text(SOURCE)
    cross = load_strategy(f"{tmp_path / 'cross.py'}:Cross")
    docs = {"Cross": build_artifact(cross(), "Cross"),
            "Fast4": build_artifact(cross(fast=4), "Fast4")}
    topic = topic_name()
    db = str(tmp_path / "world.db")
    with serve(create_app(db, insecure_dev=True)) as url:
        # both in each world: the world splits its weight between them (orders are sized so)
        for name, sid in (("ref", "Cross"), ("ref", "Fast4"), ("crash", "Cross"),
                          ("crash", "Fast4")):
            httpx.post(f"{url}/worlds", json={"id": name})
            activate(url, name, sid)
        with WorldServiceClient(url) as c:
            for doc in docs.values():
                rc.put_artifact(c, "crash", doc)
        done = crash_and_resume(
            [*runner_args(tmp_path, kafka.brokers, topic, url), "--shared"], data=DATA,
            brokers=kafka.brokers, topic=topic, url=url, world="crash", strategy_id="Cross",
            kills=2, rng=random.Random(5),
        )  # fmt: skip
        ref4 = run_args(tmp_path, "ref4", kafka.brokers, topic, url)
        ref4[ref4.index("ref4")] = "ref"  # --world ref, its own folders
        refs = [Live(run_args(tmp_path, "ref", kafka.brokers, topic, url)),
                Live([*ref4, "-p", "fast=4", "--id", "Fast4"])]
        for ref in refs:
            assert ref.wait() == 0, ref.output()
        views = {(n, s): httpx.get(f"{url}/worlds/{n}/strategies/{s}").json()
                 for n, s in (("ref", "Cross"), ("ref", "Fast4"), ("crash", "Cross"),
                              ("crash", "Fast4"))}
        with WorldServiceClient(url) as c:
            assert rc.runners(c, "crash") == []
    assert len(done) == 2 and any(0 < d < 2 * N for d in done), done
    # one group of both, in its folder: no run folder per strategy
    gid = group_key([f"{s}@{d['id']}" for s, d in docs.items()])
    folder = tmp_path / "state" / "groups" / gid
    assert json.loads((folder / "members.json").read_text())["members"] == {
        s: d["id"] for s, d in docs.items()}
    assert not (tmp_path / "state" / "runs").exists()
    for sid, ref in (("Cross", "ref"), ("Fast4", "ref4")):
        mine = left(folder / "orders.db", folder / "out" / run_dir_name(sid), "crash", sid)
        check_same(mine, left(tmp_path / ref / "orders.db", tmp_path / ref / "out", "ref", sid))
        assert views[("crash", sid)]["n_bars"] == views[("ref", sid)]["n_bars"] == N + 1
    store = open_store(db)
    for sid in ("Cross", "Fast4"):
        got = np.array(store.load_engine("crash").strategies[sid].returns)
        want = np.array(store.load_engine("ref").strategies[sid].returns)
        assert len(got) == len(want) == N
        assert np.max(np.abs(got - want)) <= 1e-12
