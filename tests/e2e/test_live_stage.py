"""A live run follows the stage its world gives it, through Tansu: paper fills while the
world says paper, then, after ``qmtl world approve``, real orders on the orders topic, in
the same run (no restart)."""

from __future__ import annotations

import json
import threading
import time

import httpx
from typer.testing import CliRunner

from qmtl.cli import app
from qmtl.core.contracts import MetricsUpdate, OrderIntent
from qmtl.live import LiveOptions, run_live
from tests.e2e.live_helpers import (
    Cross,
    Recorder,
    consume,
    make_data,
    publish,
    set_policy,
    topic_name,
    wait_for,
    world_server,
)
from world_api.client import WorldServiceClient

POLICY = """
promotion:
  paper: {min_bars: 50}
  live: {min_paper_bars: 30, approval: operator}
"""


def test_a_run_switches_from_paper_fills_to_real_orders_when_approved(kafka, tmp_path):
    data = make_data(400)
    topic = topic_name()
    orders_topic = f"{topic}.orders"
    with world_server(tmp_path) as url:
        set_policy(url, "w", POLICY)
        view = httpx.get(f"{url}/worlds/w/activation").json()
        assert view["stages"] is True
        # a backtest record of 100 bars: the world moves Cross to paper before the run
        bt = MetricsUpdate(world="w", strategy_id="Cross", run_id="bt", seq=1, mode="backtest",
                           as_of=0, n_bars=100, metrics={"sharpe": 1.0})
        r = httpx.post(f"{url}/worlds/w/metrics", content=bt.model_dump_json(),
                       headers={"content-type": "application/json"})
        assert [e["stage"] for e in r.json()["events"] if e["stage"]] == ["paper"]

        feeder = threading.Thread(target=publish, args=(kafka.brokers, topic, data, "60/s"),
                                  daemon=True)
        feeder.start()
        rec = Recorder()
        result: dict = {}

        def run() -> None:
            try:
                result["res"] = run_live(Cross, LiveOptions(
                    brokers=kafka.brokers, topic=topic, world="w", url=url, paper=False,
                    data=tmp_path / "none", warmup=0, orders_topic=orders_topic,
                    orders_store=str(tmp_path / "o.db"), stop_after_idle=4.0),
                    on_order=rec)
            except BaseException as exc:  # reported by the assertion below
                result["error"] = exc

        runner = threading.Thread(target=run, daemon=True)
        runner.start()

        def waiting() -> bool:
            v = httpx.get(f"{url}/worlds/w/strategies/Cross").json()
            return v["stage"] == "paper" and v["awaiting_approval"]

        assert wait_for(lambda: bool(rec.fills), 60), "no paper fills in stage paper"
        assert wait_for(waiting, 60), "the paper record never qualified for live"
        assert runner.is_alive() and feeder.is_alive(), "the feed ended before the approval"
        t_approve = time.monotonic()
        cli = CliRunner().invoke(app, ["world", "approve", "w", "Cross", "--url", url])
        assert cli.exit_code == 0, cli.output
        assert "Cross is live in world w" in cli.output
        feeder.join(60)
        runner.join(120)
        assert "error" not in result, result.get("error")
        res = result["res"]
        view = httpx.get(f"{url}/worlds/w/strategies/Cross").json()
        with WorldServiceClient(url) as client:
            stages = [(e.stage, e.reason) for e in client.event_list("w") if e.stage]

    sent = {k.decode(): OrderIntent.model_validate(json.loads(v))
            for k, v in consume(kafka.brokers, orders_topic)}
    paper = [o for t, o in rec.orders if t < t_approve]
    after = [o for t, o in rec.orders if t > t_approve + 1.0]
    filled = {f.order_id for _, f in rec.fills}
    # before the approval: orders filled by the paper broker, none on the orders topic
    assert paper and rec.fills
    assert not {f"w/Cross/{o.symbol}/{o.ts}" for o in paper} & set(sent)
    # after it: real orders, each on the topic and none filled on paper
    assert after, "no orders after the approval"
    for o in after:
        key = f"w/Cross/{o.symbol}/{o.ts}"
        assert sent.get(key) == o and key not in filled
    # the topic has nothing but the run's real orders; the run was one run, not restarted
    assert set(sent) <= {f"w/Cross/{o.symbol}/{o.ts}" for o in res.orders}
    assert min(o.ts for o in sent.values()) > max(o.ts for o in paper)
    assert view["stage"] == "live"
    assert [s for s, _ in stages] == ["paper", "live"]
    assert stages[1][1].startswith("approved by")
