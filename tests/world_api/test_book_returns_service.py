"""``POST /worlds/{id}/book/returns`` on SQLite and PostgreSQL: who may post, a re-sent point
ignored, bad input refused saying where with nothing kept, the realized return the book's
(``realized_source: book``) while the pro forma stays what the records give, and all of it
the same after a restart; a store from before migration 0011 keeps its points as records."""

from __future__ import annotations

import numpy as np
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.world_api.returns_scenario import POLICY, updates
from world_api.domain.evaluator import WorldEngine
from world_api.domain.policy import parse_policy
from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.store import VERSION_TABLE, open_store

UPDATES = updates(4, seed=7, world="w1")
HALF = len(UPDATES) // 2


def body(batch) -> str:
    return "[" + ",".join(u.model_dump_json() for u in batch) + "]"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def read(c: TestClient, h: dict[str, str]) -> tuple[dict, dict, dict]:
    real = c.get("/worlds/w1/returns", params={"kind": "realized"}, headers=h).json()
    pro = c.get("/worlds/w1/returns", params={"kind": "pro_forma"}, headers=h).json()
    return real, pro, c.get("/worlds/w1/metrics", headers=h).json()


def test_book_returns_replace_records_and_survive_a_restart(store_url):
    store = open_store(store_url)
    tok = {role: create_token(store, role) for role in
           ("operator", "developer", "runner", "viewer")}
    h = {role: bearer(t) for role, t in tok.items()}
    c = TestClient(create_app(store))
    assert c.post("/worlds", json={"id": "w1"}, headers=h["operator"]).status_code == 201
    r = c.put("/worlds/w1/policy", content=POLICY, headers=h["operator"])
    assert r.status_code == 200, r.text
    r = c.post("/worlds/w1/metrics", content=body(UPDATES[:HALF]), headers=h["developer"])
    assert r.status_code == 200, r.text
    real, _, met = read(c, h["viewer"])
    assert real["realized_source"] == met["realized_source"] == "records"
    assert real["points"], "the scenario's paper/live returns realize something"

    last = real["points"][-1]["ts"]
    pts = [{"ts": last + 10, "return": 0.01}, {"ts": last + 20, "return": -0.004},
           {"ts": last + 30, "return": 0.0025}]
    for role in ("viewer", "developer"):  # below runner
        r = c.post("/worlds/w1/book/returns", json=pts, headers=h[role])
        assert r.status_code == 403, r.text
    bad = [
        ([pts[0], {"ts": last + 20, "return": -1.0}], "1.return"),
        ([pts[0], {"ts": last + 20, "return": "NaN"}], "1.return"),
        ([pts[1], pts[0]], "[1].ts"),
        ([{"ts": last + 10}], "0.return"),
        ([{"ts": "x", "return": 0.1}], "0.ts"),
        ([], "no points"),
    ]
    for points, where in bad:
        r = c.post("/worlds/w1/book/returns", json=points, headers=h["runner"])
        assert r.status_code == 422, (points, r.text)
        assert where in r.json()["detail"], (where, r.text)
    assert read(c, h["viewer"])[0]["realized_source"] == "records"  # nothing kept

    r = c.post("/worlds/w1/book/returns", json=pts[:2], headers=h["runner"])
    assert r.status_code == 200, r.text
    assert r.json() == {"world": "w1", "accepted": 2, "ignored": 0, "realized_source": "book"}
    resent = [{"ts": last + 20, "return": 0.9}, pts[2]]  # a re-sent ts: the first value stays
    r = c.post("/worlds/w1/book/returns", json=resent, headers=h["operator"])
    assert (r.json()["accepted"], r.json()["ignored"]) == (1, 1)
    r = c.post("/worlds/w1/metrics", content=body(UPDATES[HALF:]), headers=h["developer"])
    assert r.status_code == 200, r.text

    ref = WorldEngine(parse_policy(POLICY))  # the records alone, for the pro forma
    for u in UPDATES:
        ref.ingest(u)
    want_ts, want_pf, _ = ref.pro_forma()
    rets = [p["return"] for p in pts]
    before = read(c, h["viewer"])
    for real, pro, met in (before, read(TestClient(create_app(store_url)), h["viewer"])):
        assert real["realized_source"] == met["realized_source"] == "book"
        assert [p["ts"] for p in real["points"]] == [p["ts"] for p in pts]
        assert [p["return"] for p in real["points"]] == rets
        np.testing.assert_allclose([p["equity"] for p in real["points"]], np.cumprod(
            1 + np.array(rets)), rtol=1e-15)
        assert met["realized"]["n_bars"] == 3
        assert met["realized"]["metrics"]["total_return"] == pytest.approx(
            float(np.prod(1 + np.array(rets)) - 1), rel=1e-12)
        assert [p["ts"] for p in pro["points"]] == want_ts.tolist()
        np.testing.assert_allclose([p["return"] for p in pro["points"]], want_pf, rtol=1e-12)
    store.close()


def test_a_store_before_0011_keeps_its_points_as_records(store_url):
    c = TestClient(create_app(store_url, insecure_dev=True))
    assert c.post("/worlds", json={"id": "w1"}).status_code == 201
    assert c.put("/worlds/w1/policy", content=POLICY).status_code == 200
    assert c.post("/worlds/w1/metrics", content=body(UPDATES[:HALF])).status_code == 200
    before = c.get("/worlds/w1/returns").json()["points"]
    assert before
    store = open_store(store_url)
    with store.transaction() as conn:  # back to revision 0010: no source column
        conn.execute(sa.text("ALTER TABLE world_returns DROP COLUMN source"))
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0010_runner'"))
    store.close()
    c = TestClient(create_app(store_url, insecure_dev=True))  # upgrades to 0011
    got = c.get("/worlds/w1/returns").json()
    assert got["points"] == before and got["realized_source"] == "records"
    r = c.post("/worlds/w1/book/returns", json=[{"ts": 1, "return": 0.02}])
    assert r.json()["realized_source"] == "book"
    c = TestClient(create_app(store_url, insecure_dev=True))
    got = c.get("/worlds/w1/returns").json()
    assert [(p["ts"], p["return"]) for p in got["points"]] == [(1, 0.02)]
