"""Activation events published to Kafka (a real Tansu broker) after they are stored."""

from __future__ import annotations

import json

import numpy as np
from fastapi.testclient import TestClient

from tests.conftest import Tansu, consume_all
from tests.world_api.service.conftest import streamed
from world_api.service.app import create_app
from world_api.service.kafka_relay import KafkaRelay, topic_for

RNG = np.random.default_rng(11)


def update(sid, seq, sharpe):
    return {"world": "w1", "strategy_id": sid, "run_id": "r", "seq": seq, "mode": "paper",
            "as_of": seq, "n_bars": 100, "metrics": {"sharpe": sharpe},
            "returns": [[seq * 30 + i, r] for i, r in enumerate(RNG.normal(0, 0.01, 30))]}


def test_events_on_kafka_equal_the_stream(kafka, tmp_path):
    app = create_app(str(tmp_path / "w.db"), insecure_dev=True, kafka_brokers=kafka.brokers)
    with TestClient(app) as c:
        c.post("/worlds", json={"id": "w1"})
        c.put("/worlds/w1/policy", content="top_k: 2")
        for seq, (sid, sharpe) in enumerate([("a", 1.0), ("b", 2.0), ("c", 3.0)], start=1):
            assert c.post("/worlds/w1/metrics", json=update(sid, seq, sharpe)).status_code == 200
        sse = [ev for _, ev in streamed(c)]
    got = [json.loads(v) for v in consume_all(kafka.brokers, topic_for("w1"), len(sse))]
    assert got == sse and len(sse) >= 3


def test_relay_catches_up_after_a_broker_outage(tmp_path):
    broker = Tansu().start()
    app = create_app(str(tmp_path / "w.db"), insecure_dev=True)
    svc = app.state.service
    svc.relay = KafkaRelay(broker.brokers, svc.store, timeout=2.0)  # fail fast while away
    try:
        with TestClient(app) as c:
            c.post("/worlds", json={"id": "w1"})
            c.post("/worlds/w1/metrics", json=update("a", 1, 1.0))
            broker.stop()
            # stored and served while Kafka is away; publishing fails and is retried later
            r = c.post("/worlds/w1/metrics", json=update("b", 2, 5.0))
            assert r.status_code == 200 and r.json()["events"]
            broker.start()  # same port, empty memory
            c.post("/worlds/w1/metrics", json=update("c", 3, 9.0))
            sse = [ev for _, ev in streamed(c)]
        missed = [ev for ev in sse if ev["seq"] > 1]
        got = [json.loads(v) for v in consume_all(broker.brokers, topic_for("w1"), len(missed))]
        assert [ev["seq"] for ev in got] == [ev["seq"] for ev in missed]  # once each, in order
    finally:
        svc.relay.close()
        broker.stop()
