"""``/worlds/{world}/allocations``: plan and apply."""

from __future__ import annotations

from tests.world_api.service.conftest import POLICY_YAML, update


def test_plan_and_apply(client):
    client.put("/worlds/w1/policy", content=POLICY_YAML.replace("max_weight: 0.6",
                                                                "max_weight: 0.9"))
    client.post("/worlds/w1/metrics", json=[update("a", 1, 1.2), update("b", 1, 1.0)])
    assert client.get("/worlds/w1/allocations").json()["weights"] == {"a": 0.5, "b": 0.5}
    plan = client.post("/worlds/w1/allocations/plan").json()
    r = client.post("/worlds/w1/allocations/apply",
                    json={"plan_id": plan["plan_id"], "overrides": {"a": 0.7, "b": 0.2}})
    assert r.status_code == 200, r.text
    assert [(e["strategy_id"], e["weight"], e["reason"]) for e in r.json()["events"]] == [
        ("a", 0.7, "allocation apply"), ("b", 0.2, "allocation apply")]
    assert client.get("/worlds/w1/allocations").json()["weights"] == {"a": 0.7, "b": 0.2}
    again = client.post("/worlds/w1/allocations/apply", json={"plan_id": plan["plan_id"]})
    assert again.status_code == 409
    audit = client.get("/worlds/w1/audit").json()[::-1]  # served newest first
    assert [a["action"] for a in audit][-2:] == ["plan", "apply"]
    assert audit[-1]["detail"]["overrides"] == {"a": 0.7, "b": 0.2}

    stale = client.post("/worlds/w1/allocations/plan").json()
    client.post("/worlds/w1/metrics", json=update("c", 1, 3.0))  # the world changes
    r = client.post("/worlds/w1/allocations/apply", json={"plan_id": stale["plan_id"]})
    assert r.status_code == 409 and "changed since the plan" in r.json()["detail"]
    bad = client.post("/worlds/w1/allocations/plan").json()
    r = client.post("/worlds/w1/allocations/apply",
                    json={"plan_id": bad["plan_id"], "overrides": {"a": 0.95}})
    assert r.status_code == 422 and "must be in [0, 0.9]" in r.json()["detail"]
