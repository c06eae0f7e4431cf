"""Hostile input over HTTP on both stores: non-finite numbers and deep nesting in policies,
integers past int64 and control characters in ids and names are refused with 422, and
nothing of them is stored."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from tests.world_api.service.conftest import update
from world_api.domain.policy import Policy
from world_api.service import tables as t
from world_api.service.app import create_app

NON_FINITE = [
    "hysteresis: {margin: .inf}",
    'gates: {sharpe: ">= 1e999"}',
    'gates: {sharpe: {op: ">=", value: .nan}}',
    "allocation: {max_weight: .nan}",
]


@pytest.mark.parametrize("body", NON_FINITE)
def test_non_finite_policy_is_refused_and_not_stored(client, body):
    r = client.put("/worlds/w1/policy", content=body)
    assert r.status_code == 422
    assert "finite" in r.json()["detail"]
    assert client.get("/worlds/w1").json()["policy_version"] == 1
    assert client.get("/worlds/w1/policy").status_code == 200
    assert client.put("/worlds/w1/policy", json={"top_k": 3}).json()["version"] == 2


@pytest.mark.parametrize("seq", [2**63, 10**30])
def test_seq_past_int64_is_refused(client, seq):
    r = client.post("/worlds/w1/metrics", json={**update("s1", seq), "as_of": 1})
    assert r.status_code == 422
    assert r.json()["detail"] == "seq: Input should be less than or equal to 9223372036854775807"
    batch = [update("s1", 1), {**update("s1", 2), "n_bars": seq}]
    r = client.post("/worlds/w1/metrics", json=batch)
    assert r.status_code == 422 and r.json()["detail"].startswith("1.n_bars: ")
    assert client.post("/worlds/w1/metrics", json=update("s1", 2**63 - 1)).status_code == 200
    r = client.get("/worlds/w1/policy", params={"version": seq})
    assert r.status_code == 422 and "version" in r.json()["detail"]


@pytest.mark.parametrize("body", [
    '{"score": ' * 1000 + "1" + "}" * 1000,
    "score: " + "[" * 500 + "]" * 500,
    "score:\n" + "".join("  " * i + "-\n" for i in range(1, 500)),
])
def test_deeply_nested_policy_is_refused(client, body):
    r = client.put("/worlds/w1/policy", content=body)
    assert r.status_code == 422
    assert "nests deeper" in r.json()["detail"]
    assert client.get("/worlds/w1").json()["policy_version"] == 1


@pytest.mark.parametrize("bad", ["s\x00", "s\n1", "\x7f"])
def test_control_characters_in_ids_are_refused(client, bad):
    r = client.post("/worlds/w1/metrics", json=update(bad, 1))
    assert r.status_code == 422
    assert "strategy_id: must not contain control characters" in r.json()["detail"]
    r = client.post("/worlds/w1/metrics", json={**update("s1", 1), "run_id": bad})
    assert r.status_code == 422 and "run_id" in r.json()["detail"]
    r = client.post("/worlds", json={"id": "w2", "name": f"demo{bad}"})
    assert r.status_code == 422
    assert "name: must not contain control characters" in r.json()["detail"]
    assert [w["id"] for w in client.get("/worlds").json()] == ["w1"]
    for method, path in [("GET", "/worlds/w%00"), ("GET", "/worlds/w%00/policy"),
                         ("PUT", "/worlds/w%0A/policy"), ("POST", "/worlds/w%00/metrics"),
                         ("GET", "/worlds/w%00/activation"), ("GET", "/worlds/w%00/allocations"),
                         ("GET", "/worlds/w%00/events"), ("GET", "/worlds/w%00/strategies"),
                         ("GET", "/worlds/w%00/strategies/s1"), ("GET", "/worlds/w%00/audit"),
                         ("POST", "/worlds/w%00/allocations/plan")]:
        r = client.request(method, path, content="{}")
        assert r.status_code == 422, (method, path)
        assert r.json()["detail"].startswith("path.world: must not contain control")


def test_world_with_an_unreadable_stored_policy_still_accepts_a_valid_one(store_url):
    """A policy stored before non-finite numbers were refused (``margin`` as null) is
    reported with 409 naming the field, and a valid PUT repairs the world."""
    app = create_app(store_url, insecure_dev=True)
    with TestClient(app) as c:
        assert c.post("/worlds", json={"id": "w1"}).status_code == 201
        assert c.post("/worlds/w1/metrics", json=update("s1", 1)).status_code == 200
        body = json.loads(Policy().model_dump_json())
        body["hysteresis"]["margin"] = None
        with app.state.service.store.transaction() as conn:
            conn.execute(insert(t.policies).values(world="w1", version=2,
                                                   body=json.dumps(body), created=0))
    app.state.service.store.close()

    app = create_app(store_url, insecure_dev=True)  # a restart: nothing in memory
    with TestClient(app) as c:
        for path in ["/worlds/w1", "/worlds/w1/policy", "/worlds/w1/activation"]:
            r = c.get(path)
            assert r.status_code == 409, path
            assert "hysteresis.margin" in r.json()["detail"]
            assert "PUT a valid policy" in r.json()["detail"]
        assert c.put("/worlds/w1/policy", content="hysteresis: {margin: .inf}").status_code == 422
        r = c.put("/worlds/w1/policy", json={"top_k": 3})
        assert r.status_code == 200 and r.json()["version"] == 3
        assert c.get("/worlds/w1").json()["policy_version"] == 3
        assert c.get("/worlds/w1/policy").json()["policy"]["top_k"] == 3
        assert c.get("/worlds/w1/activation").status_code == 200
        assert c.post("/worlds/w1/metrics", json=update("s1", 2)).status_code == 200
    app.state.service.store.close()
