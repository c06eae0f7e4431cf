"""Operator overrides hold across metric updates, are audited, shown in the activation
table, the strategy views and the events, expire and clear; allocation mode ``manual``
waits for an applied plan, and an applied plan with overrides holds until the next one."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from qmtl.core.contracts import MetricsUpdate
from tests.world_api.service.conftest import client, streamed, update  # noqa: F401
from world_api.domain.evaluator import WorldEngine
from world_api.domain.overrides import Override, pin
from world_api.domain.policy import parse_policy

OPEN = "top_k: 2\nallocation: {method: equal}\n"


def test_forced_inactive_holds_across_updates_and_is_audited(client):  # noqa: F811
    client.put("/worlds/w1/policy", content=OPEN)
    client.post("/worlds/w1/metrics", json=[update("a", 1, 2.0), update("b", 1, 1.0)])
    assert client.get("/worlds/w1/allocations").json()["weights"] == {"a": 0.5, "b": 0.5}
    r = client.put("/worlds/w1/strategies/a/override",
                   json={"state": "inactive", "reason": "broker outage"})
    assert r.status_code == 200, r.text
    assert [(e["strategy_id"], e["active"], e["reason"]) for e in r.json()["events"]] == [
        ("a", False, "override: broker outage"), ("b", True, "weight rebalance")]
    for seq in range(2, 6):  # a keeps the best score; the override holds
        client.post("/worlds/w1/metrics", json=[update("a", seq, 3.0), update("b", seq, 1.0)])
        assert client.get("/worlds/w1/allocations").json()["weights"] == {"b": 1.0}
    table = {r["strategy_id"]: r for r in client.get("/worlds/w1/activation").json()["strategies"]}
    assert table["a"]["override"] == "override: broker outage" and not table["a"]["active"]
    assert table["b"]["override"] is None
    view = client.get("/worlds/w1/strategies/a").json()
    assert view["override"]["state"] == "inactive" and view["override"]["who"] == "dev"
    audit = client.get("/worlds/w1/audit", params={"action": "override"}).json()
    assert audit[0]["actor"] == "dev" and audit[0]["detail"]["override"]["reason"] == (
        "broker outage")
    events = [e for _, e in streamed(client)]
    assert any(e["reason"] == "override: broker outage" for e in events)
    listed = client.get("/worlds/w1/overrides").json()["overrides"]
    assert [(o["strategy_id"], o["holds"]) for o in listed] == [("a", True)]

    cleared = client.delete("/worlds/w1/strategies/a/override")
    assert cleared.status_code == 200
    assert client.get("/worlds/w1/allocations").json()["weights"] == {"a": 0.5, "b": 0.5}
    assert client.delete("/worlds/w1/strategies/a/override").status_code == 404
    assert client.get("/worlds/w1/overrides").json()["overrides"] == []


def test_pinned_weight_holds_and_bad_overrides_are_refused(client):  # noqa: F811
    client.put("/worlds/w1/policy", content=OPEN)
    client.post("/worlds/w1/metrics", json=[update("a", 1, 2.0), update("b", 1, 1.0)])
    r = client.put("/worlds/w1/strategies/b/override",
                   json={"state": "active", "weight": 0.8, "reason": "conviction"})
    assert r.status_code == 200, r.text
    for seq in range(2, 4):
        client.post("/worlds/w1/metrics", json=[update("a", seq, 2.0), update("b", seq, 0.1)])
        w = client.get("/worlds/w1/allocations").json()["weights"]
        assert w["b"] == 0.8 and math.isclose(w["a"], 0.2)
    bad = client.put("/worlds/w1/strategies/a/override",
                     json={"state": "inactive", "weight": 0.3, "reason": "x"})
    assert bad.status_code == 422 and "needs state 'active'" in bad.text
    too_much = client.put("/worlds/w1/strategies/a/override",
                          json={"state": "active", "weight": 0.5, "reason": "x"})
    assert too_much.status_code == 422 and "sum to 1.3" in too_much.text
    assert client.get("/worlds/w1/allocations").json()["weights"]["b"] == 0.8  # unchanged
    assert client.put("/worlds/nope/strategies/a/override",
                      json={"state": "active", "reason": "x"}).status_code == 404


def _upd(sid: str, seq: int, sharpe: float) -> MetricsUpdate:
    return MetricsUpdate(world="w", strategy_id=sid, run_id="r", seq=seq, mode="backtest",
                         as_of=seq, n_bars=100 + seq, metrics={"sharpe": sharpe}, returns=[])


def test_an_override_expires_and_the_world_decides_again():
    eng = WorldEngine(parse_policy("top_k: 1"))
    now = [1_000]
    eng.clock = lambda: now[0]
    eng.ingest(_upd("a", 1, 2.0))
    eng.ingest(_upd("b", 1, 1.0))
    assert eng.weights() == {"a": 1.0}
    eng.overrides["b"] = Override(strategy_id="b", state="active", reason="try b", who="t",
                                  at=now[0], expires=5_000)
    eng.overrides["a"] = Override(strategy_id="a", state="inactive", reason="pause a",
                                  who="t", at=now[0], expires=5_000)
    changes = eng.reselect()
    assert {(c.strategy_id, c.active, c.reason) for c in changes} == {
        ("a", False, "override: pause a"), ("b", True, "override: try b")}
    eng.ingest(_upd("a", 2, 3.0))
    assert eng.weights() == {"b": 1.0}  # held at 4_999 ns and before
    now[0] = 5_000
    eng.ingest(_upd("a", 3, 3.0))  # expired: the policy decides again
    assert eng.weights() == {"a": 1.0}


def test_manual_mode_waits_for_an_applied_plan_which_then_holds(client):  # noqa: F811
    # (this policy once repeated `allocation:` after OPEN's, and the last one won silently)
    manual = "top_k: 2\nallocation: {method: equal, mode: manual}"
    r = client.put("/worlds/w1/policy", content=manual)
    assert r.status_code == 200, r.text
    client.post("/worlds/w1/metrics", json=[update("a", 1, 2.0), update("b", 1, 1.0)])
    assert client.get("/worlds/w1/allocations").json()["weights"] == {}  # nothing changed
    plan = client.post("/worlds/w1/allocations/plan").json()
    assert plan["proposed"] == {"a": 0.5, "b": 0.5}
    r = client.post("/worlds/w1/allocations/apply",
                    json={"plan_id": plan["plan_id"], "overrides": {"a": 0.3}, "drain": 0})
    assert r.status_code == 200, r.text
    assert [c["step"] for c in r.json()["control"]] == ["freeze", "drain", "switch", "unfreeze"]
    assert client.get("/worlds/w1/allocations").json()["weights"] == {"a": 0.3, "b": 0.5}
    client.post("/worlds/w1/metrics", json=[update("c", 1, 9.0), update("a", 2, 0.1)])
    assert client.get("/worlds/w1/allocations").json()["weights"] == {"a": 0.3, "b": 0.5}
    nxt = client.post("/worlds/w1/allocations/plan").json()
    assert nxt["proposed"] == {"b": 0.5, "c": 0.5}
    client.post("/worlds/w1/allocations/apply", json={"plan_id": nxt["plan_id"], "drain": 0})
    assert client.get("/worlds/w1/allocations").json()["weights"] == {"b": 0.5, "c": 0.5}


@given(st.dictionaries(st.sampled_from("abcdef"), st.floats(0.01, 1.0), min_size=1),
       st.dictionaries(st.sampled_from("abcdef"), st.floats(0.01, 0.3), max_size=3))
def test_pins_are_exact_and_the_total_stays_within_one(weights, pins):
    total = sum(weights.values())
    weights = {k: v / total for k, v in weights.items()}  # an allocation sums to 1
    ovs = {k: Override(strategy_id=k, state="active", weight=w, reason="r", who="t", at=0)
           for k, w in pins.items()}
    out = pin(weights, ovs, now=0)
    assert set(out) == set(weights)
    assert all(out[k] == w for k, w in pins.items() if k in weights)
    assert sum(out.values()) <= 1.0 + 1e-9
    free = [k for k in weights if k not in pins]
    if len(free) >= 2:  # the rest keeps the allocation's proportions
        a, b = free[:2]
        assert math.isclose(out[a] * weights[b], out[b] * weights[a], rel_tol=1e-9)
