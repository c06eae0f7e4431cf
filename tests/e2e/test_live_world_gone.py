"""A world force-deleted while a paper run trades in it, through Tansu and a real world
server: the run's gate holds every order from then on, while the world does not exist and
after a world of the same name is made again (its seqs start over, its policy rejects the
strategy), and says why in a log line and in ``qmtl_live_gate_held_total{cause}``."""

from __future__ import annotations

import logging
import threading

import httpx

from qmtl.live import LiveOptions, LiveResult, run_live
from tests.e2e.live_helpers import (
    Cross,
    Recorder,
    activate,
    make_data,
    publish,
    set_policy,
    slice_data,
    topic_name,
    wait_for,
    world_server,
)
from tests.e2e.test_live_metrics import scrape, val
from tests.world_api.conftest import free_port

REJECT = "min_bars: 100000"


def test_a_deleted_world_holds_every_order_for_the_rest_of_the_run(kafka, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="qmtl")
    data = make_data(400)
    parts = [slice_data(data, 0, 150), slice_data(data, 150, 250), slice_data(data, 250, 400)]
    topic = topic_name()
    port = free_port()
    rec = Recorder()
    with world_server(tmp_path, "del2") as url:
        activate(url, "del2", "Cross")
        opts = LiveOptions(
            brokers=kafka.brokers,
            topic=topic,
            world="del2",
            url=url,
            paper=True,
            data=tmp_path / "none",
            warmup=0,
            orders_store=str(tmp_path / "o.db"),
            stop_after_idle=6.0,
            max_activation_age=2.0,
            metrics_port=port,
        )
        box: dict[str, LiveResult | BaseException] = {}

        def run() -> None:
            try:
                box["result"] = run_live(Cross, opts, on_order=rec)
            except BaseException as exc:
                box["error"] = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()

        def decided(n: int) -> bool:  # the gate has decided n bars (a bar's orders too)
            try:
                got = scrape(port)
            except httpx.HTTPError:
                return False
            return (
                sum(
                    val(got, "qmtl_live_gate_total", verdict=v)
                    for v in ("trade", "flatten", "hold")
                )
                == n
            )

        # 1: active, trading (bars only once the gate has the world's activation)
        assert wait_for(
            lambda: any("following world del2" in m.getMessage() for m in caplog.records), 60
        ), box
        assert publish(kafka.brokers, topic, parts[0]) == 300
        assert wait_for(lambda: decided(300), 60), box
        # the orders of a batch are reported after its decisions are counted
        assert wait_for(lambda: len(rec.orders) >= 4, 30), "Cross should trade while active"
        last_active = max(int(b["ts"][-1]) for b in parts[0].values())

        def after_deletion() -> list:
            with rec.lock:
                return [o for _, o in rec.orders if o.ts > last_active]

        # 2: deleted (it held positions: force); the gate notices within its recheck
        r = httpx.delete(f"{url}/worlds/del2", params={"force": "true"})
        assert r.status_code == 200 and r.json()["forced"] is True, r.text
        wait_for(lambda: any("is gone" in m.getMessage() for m in caplog.records), 5)
        assert publish(kafka.brokers, topic, parts[1]) == 200
        assert wait_for(lambda: decided(500), 60), box
        gone = scrape(port)
        assert not wait_for(after_deletion, 1.0), after_deletion()
        assert val(gone, "qmtl_live_gate_held_total", cause="world_gone") == 200

        # 3: made again, with a policy that rejects the strategy: still held, not flattened
        assert httpx.post(f"{url}/worlds", json={"id": "del2"}).status_code == 201
        set_policy(url, "del2", REJECT)
        assert publish(kafka.brokers, topic, parts[2]) == 300
        assert wait_for(lambda: decided(800), 60), box

        def rejected() -> bool:
            rows = httpx.get(f"{url}/worlds/del2/activation").json()["strategies"]
            return any(
                s["strategy_id"] == "Cross" and not s["active"] and s["status"] == "rejected"
                for s in rows
            )

        assert wait_for(rejected, 30), "the new world never heard of the run"
        after = scrape(port)
        thread.join(120)
        assert not thread.is_alive() and "error" not in box, box.get("error")
        result = box["result"]
    assert isinstance(result, LiveResult) and result.stats.live_bars == 800
    assert after_deletion() == []  # nothing after the deletion, flattening neither
    assert all(o.ts <= last_active for o in result.orders) and result.new_orders >= 4
    assert val(after, "qmtl_live_gate_held_total", cause="world_gone") == 500
    assert val(after, "qmtl_live_gate_total", verdict="trade") == 300
    said = [m.getMessage() for m in caplog.records if "rest of the run" in m.getMessage()]
    assert any("world 'del2' is gone (GET /worlds/del2/activation: 404" in m for m in said), said
