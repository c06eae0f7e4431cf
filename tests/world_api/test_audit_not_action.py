"""``GET /worlds/{id}/audit?not_action=post_metrics`` leaves the metrics posts out (what the
dashboard asks by default), on both stores, and pages as the unfiltered log does."""

from __future__ import annotations

from tests.world_api.service.conftest import client, update  # noqa: F401


def test_not_action_leaves_one_action_out(client):  # noqa: F811
    for seq in range(1, 4):
        assert client.post("/worlds/w1/metrics", json=[update("a", seq, 1.0)]).status_code == 200
    client.put("/worlds/w1/policy", content="top_k: 1\n")
    every = [r["action"] for r in client.get("/worlds/w1/audit").json()]
    assert every.count("post_metrics") == 3
    kept = client.get("/worlds/w1/audit", params={"not_action": "post_metrics"})
    assert [r["action"] for r in kept.json()] == [a for a in every if a != "post_metrics"]
    first = client.get("/worlds/w1/audit", params={"not_action": "post_metrics", "limit": 1})
    assert len(first.json()) == 1 and "X-Next-Cursor" in first.headers
