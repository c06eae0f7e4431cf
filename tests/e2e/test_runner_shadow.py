"""``qmtl world run --shadow``, through Tansu and a real ``qmtl world serve``: a strategy
the world keeps in stage backtest (too few bars to promote) is run by a shadow runner on the
live feed; none of its orders leaves (no order recorded or on the orders topic, no paper
fill, no target for the book), and its updates build its ``shadow`` record while its
backtest record stays as it was and it gets no paper record. A runner without ``--shadow``
does not run it."""

from __future__ import annotations

import threading
import time

from qmtl.artifact import build_artifact
from qmtl.core.contracts import MetricsUpdate
from qmtl.live import LiveOptions
from qmtl.live.world_runner import RunnerOptions, WorldRunner
from qmtl.loader import load_strategy
from tests.e2e.live_helpers import consume, make_data, publish, topic_name, wait_for
from tests.e2e.test_world_runner import SOURCE, WorldServe
from world_api import runner_client as rc
from world_api.client import WorldServiceClient

POLICY = "promotion:\n  paper: {min_bars: 500}\n"
N = 40


def runner(url, tmp_path, kafka, bars, shadow: bool, name: str) -> WorldRunner:
    return WorldRunner(
        RunnerOptions(world="w", url=url, runner_id=name, state_dir=tmp_path / name,
                      ttl=3.0, heartbeat=0.3),
        LiveOptions(brokers=kafka.brokers, topic=bars, data=tmp_path / "none", warmup=0,
                    snapshot_interval=0.2, orders_topic=f"{bars}.orders",
                    targets_topic=f"{bars}.targets", shadow=shadow),
    )  # fmt: skip


def test_a_shadow_runner_builds_a_candidates_shadow_record(kafka, tmp_path) -> None:
    server = WorldServe(tmp_path)
    url = server.url
    (tmp_path / "cross.py").write_text(SOURCE)
    bars = topic_name()
    try:
        with WorldServiceClient(url) as c:
            c.create_world("w")
            c.put_policy("w", POLICY)
            c.post_metrics("w", [MetricsUpdate(
                world="w", strategy_id="Cand", run_id="bt", seq=1, mode="backtest", as_of=0,
                n_bars=100, metrics={"sharpe": 1.0})])  # fmt: skip
            assert c.strategy("w", "Cand")["stage"] == "backtest"
            cls = load_strategy(f"{tmp_path / 'cross.py'}:Cross")
            rc.put_artifact(c, "w", build_artifact(cls(), "Cand"))
            before = c.strategy("w", "Cand")["records"]
        plain = runner(url, tmp_path, kafka, bars, False, "plain")
        assert plain.step() == []  # a runner without --shadow leaves it alone
        plain.stop_all()
        shadow = runner(url, tmp_path, kafka, bars, True, "shadow")
        stop = threading.Event()
        loop = threading.Thread(target=shadow.run, args=(stop,), daemon=True)
        loop.start()
        try:
            assert wait_for(lambda: "Cand" in shadow.runs, 60)
            run = shadow.runs["Cand"]
            time.sleep(1.0)  # its consumer placed before the first bar
            publish(kafka.brokers, bars, make_data(N), "40/s")
            assert wait_for(lambda: run.stats.live_bars >= N - 2, 60)

            def recorded() -> bool:
                with WorldServiceClient(url) as c:
                    rec = c.strategy("w", "Cand")["records"]
                return "shadow" in rec and rec["shadow"]["n_bars"] >= N // 2 - 1

            assert wait_for(recorded, 30)
            with WorldServiceClient(url) as c:
                row = next(r for r in rc.runners(c, "w") if r["runner"] == "shadow")
            assert row["report"]["strategies"]["Cand"]["shadow"] is True  # status marks it
        finally:
            stop.set()
            loop.join(60)
        assert run.error is None, run.error
        res = run.result
        with WorldServiceClient(url) as c:
            view = c.strategy("w", "Cand")
    finally:
        server.stop()
    assert res is not None and res.n_bars > 0
    assert res.orders == [] and res.fills == []  # nothing recorded, nothing filled
    assert res.held_by_cause.get("stage", 0) > 0  # the gate held every bar for its stage
    assert consume(kafka.brokers, f"{bars}.orders", timeout=2.0) == []
    assert consume(kafka.brokers, f"{bars}.targets", timeout=2.0) == []
    assert view["stage"] == "backtest"
    recs = view["records"]
    assert set(recs) == {"backtest", "shadow"}  # no paper record, no live one
    assert recs["backtest"] == before["backtest"]  # the backtest record is as it was
