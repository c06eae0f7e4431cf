"""Two world runners of one world split its strategies by lease; ``kill -9`` of one (a
``qmtl world run`` subprocess) and the other takes its strategies over once their leases
expire, resuming them from the snapshots in the shared state folder. At every look, each
strategy is run by exactly one runner."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import httpx

from qmtl.artifact import build_artifact
from qmtl.live import META_FILE, LiveOptions
from qmtl.live.world_runner import RunnerOptions, WorldRunner, run_dir_name
from qmtl.loader import load_strategy
from tests.e2e.live_helpers import Live, activate, make_data, publish, topic_name, wait_for
from tests.e2e.test_world_runner_crash import SOURCE
from tests.world_api.conftest import serve
from world_api import runner_client as rc
from world_api.client import WorldServiceClient
from world_api.service.app import create_app

SIDS = ["a", "b", "c", "d"]


def held(url: str) -> dict[str, list[str]]:
    with WorldServiceClient(url) as c:
        return {r["runner"]: r["strategies"] for r in rc.runners(c, "w")}


def meta(state: Path, sid: str) -> dict:
    """The identity a strategy's recovery folder keeps (a fresh start writes a new run id)."""
    return json.loads((state / "runs" / run_dir_name(sid) / META_FILE).read_text())


def test_a_killed_runners_strategies_move_to_the_other(kafka, tmp_path: Path):
    (tmp_path / "cross.py").write_text(SOURCE)
    cross = load_strategy(f"{tmp_path / 'cross.py'}:Cross")
    topic, state = topic_name(), tmp_path / "state"
    with serve(create_app(str(tmp_path / "world.db"), insecure_dev=True)) as url:
        assert httpx.post(f"{url}/worlds", json={"id": "w"}).status_code == 201
        with WorldServiceClient(url) as c:
            for i, sid in enumerate(SIDS):
                activate(url, "w", sid)
                rc.put_artifact(c, "w", build_artifact(cross(fast=2 + i), sid))
        feeder = threading.Thread(
            target=publish, args=(kafka.brokers, topic, make_data(500), "25/s"), daemon=True
        )
        feeder.start()
        a = Live([
            "world", "run", "w", "--url", url, "--brokers", kafka.brokers, "--topic", topic,
            "--paper", "--warmup", "0", "--data", str(tmp_path / "none"), "--state-dir",
            str(state), "--runner-id", "A", "--ttl", "2", "--heartbeat", "0.3",
            "--snapshot-interval", "0.2",
        ])  # fmt: skip
        events: list[tuple[str, str, str]] = []
        b = WorldRunner(
            RunnerOptions(world="w", url=url, runner_id="B", state_dir=state, ttl=2.0,
                          heartbeat=0.3),
            LiveOptions(brokers=kafka.brokers, topic=topic, paper=True,
                        data=tmp_path / "none", warmup=0, snapshot_interval=0.2),
            on_event=lambda *e: events.append(e),
        )  # fmt: skip
        stop = threading.Event()
        loop = threading.Thread(target=b.run, args=(stop,), daemon=True)
        try:
            assert wait_for(lambda: held(url).get("A") == SIDS, 120), a.output()
            loop.start()

            def split() -> bool:
                h = held(url)
                return (
                    len(h.get("A", [])) == 2 and sorted(b.runs) == h.get("B") and len(b.runs) == 2
                )

            assert wait_for(split, 60), (held(url), events, a.output())
            h = held(url)
            assert sorted(h["A"] + h["B"]) == SIDS
            taken = h["A"]
            run_ids = {s: meta(state, s)["run_id"] for s in taken}
            a.proc.kill()  # kill -9
            a.wait(30)
            for _ in range(200):  # until B runs all four: never one strategy on both
                h = held(url)
                assert not set(h.get("A", [])) & set(b.runs), (h, sorted(b.runs))
                if sorted(b.runs) == SIDS:
                    break
                stop.wait(0.05)
            assert wait_for(lambda: sorted(b.runs) == SIDS, 60), events
            assert wait_for(lambda: held(url).get("B") == SIDS, 30)
            assert held(url).get("A") == []
            # the taken-over strategies resumed from A's snapshots and keep trading
            assert wait_for(lambda: all(b.runs[s].stats.live_bars > 0 for s in taken), 60)
            assert {s: meta(state, s)["run_id"] for s in taken} == run_ids  # resumed, not anew
            assert all(b.runs[s].error is None for s in SIDS)
            assert not [e for e in events if e[1] in ("failed", "refused")], events
        finally:
            stop.set()
            loop.join(60)
            if a.proc.poll() is None:
                a.proc.kill()
            feeder.join(60)
