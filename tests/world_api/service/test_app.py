"""The WorldService over HTTP, on SQLite and on PostgreSQL."""

from __future__ import annotations

import threading

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient

from tests.world_api.conftest import TcpProxy, serve
from world_api.service.app import create_app, parse_sse
from world_api.service.auth import create_token
from world_api.service.store import open_store

POLICY_YAML = """
min_bars: 100
gates: {sharpe: ">= 0.5"}
score: {sharpe: 1.0}
top_k: 2
allocation: {method: equal, max_weight: 0.6}
"""

RNG = np.random.default_rng(7)


def update(sid, seq, sharpe=1.0, n_bars=200, run="r1", world="w1"):
    return {"world": world, "strategy_id": sid, "run_id": run, "seq": seq, "mode": "backtest",
            "as_of": seq, "n_bars": n_bars, "metrics": {"sharpe": sharpe},
            "returns": RNG.normal(0.001, 0.01, 30).tolist()}


@pytest.fixture
def client(store_url):
    app = create_app(store_url, insecure_dev=True)
    with TestClient(app) as c:
        created = c.post("/worlds", json={"id": "w1", "name": "demo", "capital": 1e6})
        assert created.status_code == 201
        yield c
    app.state.service.store.close()


def test_worlds_crud_and_errors(client):
    assert client.post("/worlds", json={"id": "w1"}).status_code == 409
    assert [w["id"] for w in client.get("/worlds").json()] == ["w1"]
    got = client.get("/worlds/w1").json()
    assert got["capital"] == 1e6 and got["policy_version"] == 1 and got["seq"] == 0
    r = client.get("/worlds/nope")
    assert r.status_code == 404 and r.json()["detail"] == "unknown world 'nope'"
    r = client.post("/worlds", json={"id": "bad id!"})
    assert r.status_code == 422 and "id" in r.json()["detail"]


def test_policy_versions_yaml_and_json(client):
    r = client.put("/worlds/w1/policy", content=POLICY_YAML)
    assert r.status_code == 200 and r.json()["version"] == 2
    r = client.put("/worlds/w1/policy", json={"top_k": 3})
    assert r.json()["version"] == 3
    assert client.get("/worlds/w1/policy").json()["policy"]["top_k"] == 3
    assert client.get("/worlds/w1/policy", params={"version": 2}).json()["policy"]["top_k"] == 2
    assert client.get("/worlds/w1/policy", params={"version": 9}).status_code == 404
    r = client.put("/worlds/w1/policy", content="gates: {sharpee: '>= 1'}")
    assert r.status_code == 422
    assert "gates: sharpee: unknown metric" in r.json()["detail"]
    assert client.get("/worlds/w1").json()["policy_version"] == 3  # nothing half-written


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

    events = parse_sse(client.get("/worlds/w1/events", params={"once": 1}).text)
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
    audit = client.get("/worlds/w1/audit").json()
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


def test_sse_resumes_after_last_event_id(client):
    client.post("/worlds/w1/metrics", json=[update(s, 1, 1.0 + i) for i, s in enumerate("abc")])
    full = parse_sse(client.get("/worlds/w1/events?once=1").text)
    assert len(full) >= 3
    tail = parse_sse(client.get("/worlds/w1/events?once=1",
                                headers={"Last-Event-ID": str(full[1][0])}).text)
    assert tail == full[2:]


def test_tokens_roles_and_audit(store_url):
    store = open_store(store_url)
    viewer = create_token(store, "viewer", "watcher")
    dev = create_token(store, "developer", "quant")
    op = create_token(store, "operator", "boss")
    app = create_app(store)
    with TestClient(app) as c:
        def h(t):
            return {"Authorization": f"Bearer {t}", "X-Request-ID": "req-42"}

        assert c.get("/worlds").status_code == 401
        assert c.get("/worlds", headers={"Authorization": "Bearer nope"}).status_code == 401
        r = c.post("/worlds", json={"id": "w1"}, headers=h(dev))
        assert r.status_code == 403 and "needs 'operator'" in r.json()["detail"]
        assert c.post("/worlds", json={"id": "w1"}, headers=h(op)).status_code == 201
        r = c.post("/worlds/w1/metrics", json=update("a", 1), headers=h(viewer))
        assert r.status_code == 403
        assert c.post("/worlds/w1/metrics", json=update("a", 1), headers=h(dev)).status_code == 200
        assert c.get("/worlds/w1/activation", headers=h(viewer)).status_code == 200
        audit = c.get("/worlds/w1/audit", headers=h(viewer)).json()
        assert [(a["actor"], a["action"], a["request_id"]) for a in audit] == [
            ("boss", "create_world", "req-42"), ("quant", "post_metrics", "req-42")]
    store.close()


def test_snapshot_then_stream_misses_nothing_under_concurrent_updates(store_url):
    app = create_app(store_url, insecure_dev=True)
    with serve(app) as base, httpx.Client(base_url=base, timeout=30) as c:
        c.post("/worlds", json={"id": "w1"})
        c.put("/worlds/w1/policy", content="top_k: 3\nallocation: {method: inverse_vol}")

        def writer(k: int) -> None:
            with httpx.Client(base_url=base, timeout=30) as w:
                for seq in range(1, 16):
                    sharpe = float(RNG.normal(1, 0.5))
                    w.post("/worlds/w1/metrics", json=update(f"s{k}", seq, sharpe))

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        snap = c.get("/worlds/w1/activation").json()
        for t in threads:
            t.join()
        final = c.get("/worlds/w1/activation").json()
        streamed = parse_sse(c.get("/worlds/w1/events", params={"after": snap["seq"],
                                                                 "once": 1}).text)
        seqs = [s for s, _ in streamed]
        assert seqs == list(range(snap["seq"] + 1, final["seq"] + 1))
        # replaying the snapshot's table plus the stream gives the final table
        table = {r["strategy_id"]: (r["active"], r["weight"]) for r in snap["strategies"]}
        for _, ev in streamed:
            table[ev["strategy_id"]] = (ev["active"], ev["weight"])
        want = {r["strategy_id"]: (r["active"], r["weight"]) for r in final["strategies"]}
        assert {k: v for k, v in table.items() if v[0]} == {k: v for k, v in want.items() if v[0]}
    app.state.service.store.close()


def test_unreachable_store_gives_503_and_writes_nothing(store_url):
    if not store_url.startswith("postgresql"):
        pytest.skip("an unreachable server is a PostgreSQL scenario")
    proxy = TcpProxy(("127.0.0.1", 5432))
    url = store_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    app = create_app(url, insecure_dev=True)
    with TestClient(app) as c:
        c.post("/worlds", json={"id": "w1"})
        proxy.cut()
        r = c.post("/worlds/w1/metrics", json=update("a", 1))
        assert r.status_code == 503 and "nothing was written" in r.json()["detail"]
        assert c.get("/worlds/w1/activation").status_code == 503
        proxy.restore()
        for _ in range(20):  # each server thread notices its broken connection once
            r = c.post("/worlds/w1/metrics", json=update("a", 1))
            if r.status_code != 503:
                break
        assert r.status_code == 200 and r.json()["accepted"] == 1
        snap = c.get("/worlds/w1/activation")
        for _ in range(20):
            if snap.status_code != 503:
                break
            snap = c.get("/worlds/w1/activation")
        assert snap.json()["seq"] == 1  # one event: the refused writes left nothing behind
    proxy.cut()
    app.state.service.store.close()
