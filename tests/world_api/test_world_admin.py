"""Managing worlds: PATCH and DELETE /worlds/{world} and the strategy filters, on both stores
(SQLite and PostgreSQL)."""

from __future__ import annotations

from time import time_ns

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from tests.world_api.service.conftest import POLICY_YAML, update
from world_api.service import tables as t
from world_api.service.app import create_app
from world_api.service.store import WorldInfo, open_store
from world_api.service.world_admin_store import HoldsPositions, world_tables

# a, c pass the sharpe gate and take the two top_k slots (0.5 each, equal, max 0.6); b fails
SHARPES = {"a": 1.2, "b": 0.2, "c": 0.9, "d": 0.7}


@pytest.fixture
def app_client(store_url):
    app = create_app(store_url, insecure_dev=True)
    with TestClient(app) as c:
        assert c.post("/worlds", json={"id": "w1", "name": "demo", "capital": 1e6,
                                       "mode": "paper"}).status_code == 201
        assert c.put("/worlds/w1/policy", content=POLICY_YAML).status_code == 200
        body = [update(sid, 1, sharpe) for sid, sharpe in SHARPES.items()]
        assert c.post("/worlds/w1/metrics", json=body).status_code == 200
        yield c
    app.state.service.store.close()


def _rows(store, world: str) -> dict[str, int]:
    with store.transaction() as conn:
        out = {tb.name: conn.execute(select(func.count()).select_from(tb)
                                     .where(tb.c.world == world)).scalar()
               for tb in world_tables()}
        out["worlds"] = conn.execute(select(func.count()).select_from(t.worlds)
                                     .where(t.worlds.c.id == world)).scalar()
    return out


def test_patch_changes_only_the_fields_sent_and_is_audited(app_client):
    r = app_client.patch("/worlds/w1", json={"capital": 250000, "mode": "live"})
    assert r.status_code == 200, r.text
    assert {k: r.json()[k] for k in ("name", "capital", "mode")} == {
        "name": "demo", "capital": 250000.0, "mode": "live"}
    assert app_client.get("/worlds/w1").json()["capital"] == 250000.0
    audit = app_client.get("/worlds/w1/audit", params={"action": "update_world"}).json()
    rows = audit if isinstance(audit, list) else audit["rows"]
    assert rows[-1]["detail"] == {"changed": {"capital": [1e6, 250000.0],
                                              "mode": ["paper", "live"]}}


@pytest.mark.parametrize(("body", "status", "says"), [
    ({}, 422, "nothing to update"),
    ({"capital": -1}, 422, "capital"),
    ({"mode": "moon"}, 422, "mode"),
    ({"name": "a\x00b"}, 422, "name"),
    ({"colour": "red"}, 422, "colour"),
])
def test_patch_refuses_bad_bodies_and_writes_nothing(app_client, body, status, says):
    r = app_client.patch("/worlds/w1", json=body)
    assert r.status_code == status and says in r.json()["detail"], r.text
    assert app_client.get("/worlds/w1").json()["capital"] == 1e6


def test_patch_and_delete_of_an_unknown_world_are_404(app_client):
    assert app_client.patch("/worlds/nope", json={"name": "x"}).status_code == 404
    assert app_client.delete("/worlds/nope").status_code == 404


def test_delete_is_refused_while_strategies_hold_positions_then_forced(app_client):
    store = app_client.app.state.service.store
    before = _rows(store, "w1")
    assert before["events"] > 0 and before["strategy_state"] == 4 and before["policies"] == 2
    r = app_client.delete("/worlds/w1")
    assert r.status_code == 409 and "(a, c)" in r.json()["detail"], r.text
    assert _rows(store, "w1") == before  # nothing removed
    r = app_client.delete("/worlds/w1", params={"force": "true"})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["forced"] is True and out["holders"] == ["a", "c"]
    assert out["rows"]["events"] == before["events"] and out["rows"]["worlds"] == 1
    assert all(n == 0 for n in _rows(store, "w1").values())
    assert app_client.get("/worlds/w1").status_code == 404
    assert app_client.get("/worlds/w1/strategies").status_code == 404
    # the deletion itself is in the service's own audit log
    gone = [row for row in store.audit_log(None) if row["action"] == "delete_world"]
    assert gone[-1]["detail"]["world"] == "w1" and gone[-1]["detail"]["forced"] is True
    # the id can be reused: a new world starts empty
    assert app_client.post("/worlds", json={"id": "w1"}).status_code == 201
    assert app_client.get("/worlds/w1/strategies").json() == []


def test_a_backtest_world_holds_no_positions(app_client):
    assert app_client.patch("/worlds/w1", json={"mode": "backtest"}).status_code == 200
    r = app_client.delete("/worlds/w1")
    assert r.status_code == 200 and r.json() == {**r.json(), "forced": False, "holders": []}


def test_delete_leaves_other_worlds_alone(store_url):
    store = open_store(store_url)
    try:
        for w in ("x", "y"):
            store.create_world(WorldInfo(id=w))
        before = _rows(store, "y")
        store.delete_world("x")
        assert _rows(store, "y") == before and [w.id for w in store.list_worlds()] == ["y"]
    finally:
        store.close()


def test_store_refuses_without_force(store_url):
    store = open_store(store_url)
    try:
        store.create_world(WorldInfo(id="x", mode="live"))
        with store.transaction() as conn:
            conn.execute(t.strategy_state.insert().values(
                world="x", strategy_id="s", state='{"active": true, "weight": 0.25}'))
            conn.execute(t.strategy_state.insert().values(
                world="x", strategy_id="z", state='{"active": true, "weight": 0.0}'))
        assert store.position_holders("x") == ["s"]
        with pytest.raises(HoldsPositions):
            store.delete_world("x")
        assert store.delete_world("x", force=True)["rows"]["strategy_state"] == 2
    finally:
        store.close()


def _ids(r) -> list[str]:
    assert r.status_code == 200, r.text
    return [v["strategy_id"] for v in r.json()]


def test_strategy_filters(app_client):
    get = lambda **p: app_client.get("/worlds/w1/strategies", params=p)  # noqa: E731
    assert _ids(get()) == ["a", "c", "d", "b"]  # ranked first (by score), then the unranked
    assert _ids(get(active="true")) == ["a", "c"]
    assert _ids(get(active="false", sort="id")) == ["b", "d"]
    assert _ids(get(status="rejected")) == ["b"]
    assert _ids(get(status="candidate")) == ["d"]
    assert _ids(get(q="A")) == ["a"]
    assert _ids(get(sort="id")) == ["a", "b", "c", "d"]
    weights = [v["weight"] for v in get(sort="weight").json()]
    assert weights == sorted(weights, reverse=True) and weights[0] == 0.5
    assert get(status="paused").status_code == 422
    assert get(sort="colour").status_code == 422
    assert get(limit=0).status_code == 422


def test_strategy_pages_cover_everything_once(app_client):
    for sort in ("rank", "id", "weight", "score", "n_bars"):
        whole = _ids(app_client.get("/worlds/w1/strategies", params={"sort": sort}))
        seen, cursor, pages = [], None, 0
        while True:
            params = {"sort": sort, "limit": 3, **({"cursor": cursor} if cursor else {})}
            r = app_client.get("/worlds/w1/strategies", params=params)
            seen += _ids(r)
            pages += 1
            cursor = r.headers.get("x-next-cursor")
            if cursor is None:
                break
        assert seen == whole and pages == 2, sort
    r = app_client.get("/worlds/w1/strategies", params={"sort": "rank", "limit": 1})
    cur = r.headers["x-next-cursor"]
    bad = app_client.get("/worlds/w1/strategies", params={"sort": "id", "cursor": cur})
    assert bad.status_code == 422 and "made for sort='rank'" in bad.json()["detail"]
    junk = app_client.get("/worlds/w1/strategies", params={"cursor": "!!"})
    assert junk.status_code == 422


def test_a_world_made_again_after_delete_gets_its_events_on_kafka(kafka, tmp_path):
    """The relay forgets a deleted world: the new world's events (seq 1, 2, ...) are published
    after the old world's, and the kafka counter of /metrics counts every one."""
    import json

    from prometheus_client.parser import text_string_to_metric_families

    from tests.conftest import consume_all
    from world_api.service.kafka_relay import topic_for

    world = f"wk{time_ns()}"
    app = create_app(str(tmp_path / "w.db"), insecure_dev=True, kafka_brokers=kafka.brokers)
    with TestClient(app) as c:
        counts = []
        for _ in range(2):
            assert c.post("/worlds", json={"id": world, "mode": "backtest"}).status_code == 201
            body = [update(sid, 1, sharpe, world=world) for sid, sharpe in SHARPES.items()]
            r = c.post(f"/worlds/{world}/metrics", json=body)
            assert r.status_code == 200
            counts.append([e["seq"] for e in r.json()["events"]])
            assert c.delete(f"/worlds/{world}").status_code == 200
        scraped = {s.name: s.value for f in text_string_to_metric_families(c.get("/metrics").text)
                   for s in f.samples if s.labels.get("channel") == "kafka"}
    total = sum(len(x) for x in counts)
    got = [json.loads(v)["seq"] for v in consume_all(kafka.brokers, topic_for(world), total)]
    assert counts[0] and counts[0] == counts[1] == list(range(1, len(counts[0]) + 1))
    assert got == counts[0] + counts[1]
    assert scraped["qmtl_world_events_published_total"] == total
    app.state.service.store.close()
