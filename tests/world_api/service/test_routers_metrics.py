"""``POST /worlds/{world}/metrics`` and the views it feeds (strategies, activation)."""

from __future__ import annotations

import pytest

from tests.world_api.service.conftest import POLICY_YAML, streamed, update


def test_metrics_activation_events_and_idempotency(client):
    client.put("/worlds/w1/policy", content=POLICY_YAML)
    r = client.post("/worlds/w1/metrics", json=[update("a", 1, 1.2), update("b", 1, 0.2)])
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["accepted"] == 2 and [e["strategy_id"] for e in body["events"]] == ["a"]

    snap = client.get("/worlds/w1/activation").json()
    table = {row["strategy_id"]: row for row in snap["strategies"]}
    assert table["a"]["active"] and table["a"]["weight"] == 0.6  # equal, capped at 0.6
    assert not table["b"]["active"] and table["b"]["status"] == "rejected"
    assert client.get("/worlds/w1/strategies/b").json()["hints"] == ["sharpe 0.2 < gate 0.5"]

    events = streamed(client)
    assert [seq for seq, _ in events] == list(range(1, snap["seq"] + 1))

    replay = client.post("/worlds/w1/metrics", json=update("a", 1, 1.2)).json()
    assert replay == {"accepted": 0, "duplicates": 1, "events": []}
    r = client.post("/worlds/w1/metrics", json=update("a", 5, 1.2))
    assert r.status_code == 200
    r = client.post("/worlds/w1/metrics", json=update("a", 3, 1.2))
    assert r.status_code == 409 and "seq 3 of run 'r1' is not after the last seen seq 5" in r.text
    assert client.get("/worlds/w1/activation").json()["seq"] == snap["seq"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({**update("a", 1), "metrics": {"sharpe": float("nan")}}, "not finite"),
        ({**update("a", 1), "seq": -1}, "seq"),
        ({**update("a", 1, world="w2")}, "posted to world 'w1'"),
        ({"strategy_id": "a"}, "Field required"),
    ],
)
def test_malformed_updates_are_refused(client, payload, message):
    import json

    r = client.post("/worlds/w1/metrics", content=json.dumps(payload, allow_nan=True),
                    headers={"content-type": "application/json"})
    assert r.status_code == 422 and message in r.json()["detail"]
    assert client.get("/worlds/w1/activation").json()["strategies"] == []


def test_unknown_world_and_strategy(client):
    assert client.post("/worlds/zz/metrics", json=update("a", 1, world="zz")).status_code == 404
    r = client.get("/worlds/w1/strategies/ghost")
    assert r.status_code == 404 and "has not reported" in r.json()["detail"]


def test_oversize_body_is_refused(client):
    r = client.post("/worlds/w1/metrics", content=b"x" * (2 << 20),
                    headers={"content-type": "application/json"})
    assert r.status_code == 413
