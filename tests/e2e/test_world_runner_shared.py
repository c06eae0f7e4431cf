"""``qmtl world run --shared``: two strategies that share nodes run as one group (one feed
reader, one flow); the runner is killed with ``kill -9`` at random points and restarted with
the same ``--state-dir``, and each strategy ends where its own uninterrupted
``qmtl run --mode live`` ends: the same rows, metrics, orders, fills and positions, and the
world has each bar's return once."""

from __future__ import annotations

import json
import random
import threading
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq

from connectors.live.order_store import open_order_store
from qmtl.artifact import build_artifact
from qmtl.live import LiveOptions
from qmtl.live.group import group_key
from qmtl.live.world_groups import SharedWorldRunner
from qmtl.live.world_runner import RunnerOptions, run_dir_name
from qmtl.loader import load_strategy
from qmtl.submit import submit
from tests.e2e.live_helpers import (
    Live,
    activate,
    crash_and_resume,
    make_data,
    publish,
    read_json,
    slice_data,
    topic_name,
    wait_for,
)
from tests.e2e.test_live_crash import check_same, run_args
from tests.e2e.test_world_runner import served  # noqa: F401 (a fixture)
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


def test_a_shared_runner_adds_and_mutes_while_its_group_runs(kafka, served, tmp_path):  # noqa: F811
    """a and b start as one group; c, submitted mid-run, starts a group of its own; b,
    overridden inactive for good, is muted in its group while a keeps running in it."""
    url = served
    path = tmp_path / "dev" / "cross.py"
    path.parent.mkdir()
    path.write_text(SOURCE)
    cross = load_strategy(f"{path}:Cross")
    data = make_data(400)
    history = slice_data(data, 0, 120)
    for sid, fast in (("a", 3), ("b", 4)):
        assert submit(cross, "w", url, strategy_id=sid, data=history, fast=fast).artifact_id
    topic = topic_name()
    feeder = threading.Thread(target=publish, daemon=True,
                              args=(kafka.brokers, topic, slice_data(data, 120, 400), "40/s"))
    feeder.start()
    events: list[tuple[str, str, str]] = []
    runner = SharedWorldRunner(
        RunnerOptions(world="w", url=url, runner_id="r1", state_dir=tmp_path / "state",
                      ttl=3.0, heartbeat=0.3),
        LiveOptions(brokers=kafka.brokers, topic=topic, paper=True, data=tmp_path / "none",
                    warmup=0, snapshot_interval=0.2),
        on_event=lambda *e: events.append(e),
    )
    stop = threading.Event()
    loop = threading.Thread(target=runner.run, args=(stop,), daemon=True)
    loop.start()
    try:
        assert wait_for(lambda: set(runner.runs) == {"a", "b"}, 60), events
        [first] = runner.groups.values()
        assert sorted(first.members) == ["a", "b"]
        assert wait_for(lambda: first.stats.live_bars > 0, 60)
        submit(cross, "w", url, strategy_id="c", data=history, fast=5)
        assert wait_for(lambda: "c" in runner.runs, 60), events
        assert len(runner.groups) == 2 and runner.groups[first.gid] is first
        [second] = [g for g in runner.groups.values() if g is not first]
        assert list(second.members) == ["c"] and first.thread.is_alive()
        with WorldServiceClient(url) as c:
            c.put_override("w", "b", "inactive", "retired")
        assert wait_for(lambda: "b" not in runner.runs, 60), events
        assert first.muted == {"b"} and first.thread.is_alive()
        b_orders = count_orders(tmp_path / "state" / "groups" / first.gid, "b")
        bars = first.stats.live_bars
        assert wait_for(lambda: first.stats.live_bars > bars, 60)  # a goes on in the group
        assert runner.group_of("a") is first and runner.group_of("c") is second
    finally:
        stop.set()
        loop.join(60)
        feeder.join(60)
    assert not loop.is_alive() and not runner.runs and not runner.groups
    folder = tmp_path / "state" / "groups" / first.gid
    assert count_orders(folder, "b") == b_orders  # none since it was muted, a's went on
    assert count_orders(folder, "a") > 0


def count_orders(folder: Path, strategy: str) -> int:
    """How many orders the group in ``folder`` holds for ``strategy`` in world w."""
    store = open_order_store(str(folder / "orders.db"))
    try:
        return len(store.orders("w", strategy))
    finally:
        store.close()
