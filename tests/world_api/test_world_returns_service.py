"""The world's own return through the service: the same points after a restart on SQLite and
PostgreSQL, whatever the grouping of updates into requests (hypothesis), nothing of a refused
batch kept, and the reference's values through the endpoints."""

from __future__ import annotations

import itertools
import json
import tempfile
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qmtl.core.contracts import MetricsUpdate
from tests.world_api.returns_scenario import POLICY, Reference, updates
from world_api.domain.evaluator import WorldEngine
from world_api.domain.policy import parse_policy
from world_api.service.app import create_app

ROUNDS = 4
UPDATES = updates(ROUNDS, seed=5, world="w1")


def body(batch: list[MetricsUpdate]) -> str:
    return "[" + ",".join(u.model_dump_json() for u in batch) + "]"


def world_app(url: str) -> TestClient:
    c = TestClient(create_app(url, insecure_dev=True))
    if c.get("/worlds/w1").status_code == 404:
        assert c.post("/worlds", json={"id": "w1"}).status_code == 201
        assert c.put("/worlds/w1/policy", content=POLICY).status_code == 200
    return c


def read_all(c: TestClient) -> dict:
    out = {kind: c.get("/worlds/w1/returns", params={"kind": kind}).json()
           for kind in ("realized", "pro_forma")}
    out["metrics"] = c.get("/worlds/w1/metrics").json()
    out["strategies"] = {sid: c.get(f"/worlds/w1/strategies/{sid}/returns").json()
                         for sid in ("wk", "cr", "hr", "lag")}
    return out


def post_in(c: TestClient, cuts: list[int]) -> None:
    edges = [0, *sorted(set(cuts)), len(UPDATES)]
    for lo, hi in itertools.pairwise(edges):
        if hi > lo:
            r = c.post("/worlds/w1/metrics", content=body(UPDATES[lo:hi]))
            assert r.status_code == 200, r.text


def test_restart_gives_identical_world_returns(store_url):
    c = world_app(store_url)
    post_in(c, list(range(0, len(UPDATES), 3)))
    before = read_all(c)
    c.app.state.service.store.close()
    again = world_app(store_url)  # a new service on the same store
    assert read_all(again) == before
    # and the values are the reference's
    eng, ref = WorldEngine(parse_policy(POLICY)), Reference()
    for u in UPDATES:
        ref.before(u)
        ref.after(eng.ingest(u))
    realized = ref.realized()
    got = before["realized"]["points"]
    assert [p["ts"] for p in got] == realized.index.tolist()
    np.testing.assert_allclose([p["return"] for p in got], realized.to_numpy(), rtol=1e-12)
    np.testing.assert_allclose([p["equity"] for p in got], np.cumprod(1 + realized.to_numpy()),
                               rtol=1e-12)
    pro = ref.pro_forma()
    assert [p["ts"] for p in before["pro_forma"]["points"]] == pro.index.tolist()
    again.app.state.service.store.close()


_ONE_BY_ONE: dict = {}


def posted_in(cuts: list[int]) -> dict:
    """Everything the world answers after the updates were posted in requests split at
    ``cuts``, on a SQLite store of its own."""
    with tempfile.TemporaryDirectory() as d:
        c = world_app(str(Path(d) / "w.db"))
        try:
            post_in(c, cuts)
            return read_all(c)
        finally:
            c.app.state.service.store.close()


def one_by_one() -> dict:
    if not _ONE_BY_ONE:
        _ONE_BY_ONE.update(posted_in(list(range(len(UPDATES)))))
    return _ONE_BY_ONE


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(1, len(UPDATES) - 1), max_size=6))
def test_grouping_updates_into_requests_changes_nothing(cuts):
    want = one_by_one()
    assert want["realized"]["points"] and want["pro_forma"]["points"]  # not vacuous
    assert posted_in(cuts) == want


def test_a_refused_batch_leaves_the_world_return_as_it_was(tmp_path):
    c = world_app(str(tmp_path / "w.db"))
    post_in(c, list(range(0, 8)))  # the first 8 updates, one request each
    before = read_all(c)
    assert before["realized"]["points"]
    # the next updates, then one going back in seq: 409, and nothing of the batch is kept
    stale = UPDATES[0].model_copy(update={"seq": 0, "run_id": "r"})
    r = c.post("/worlds/w1/metrics", content=body([*UPDATES[8:12], stale]))
    assert r.status_code == 409
    assert read_all(c) == before
    c.app.state.service.store.close()


def test_old_form_update_is_refused_with_what_changed(tmp_path):
    c = world_app(str(tmp_path / "w.db"))
    old = json.loads(UPDATES[0].model_dump_json())
    old["returns"] = [r for _, r in UPDATES[0].returns]
    r = c.post("/worlds/w1/metrics", json=old)
    assert r.status_code == 422
    assert r.json()["detail"] == (
        "returns: returns are now [ts, return] pairs (ts = the close time of the bar the "
        "return was earned on, int64 ns UTC, strictly increasing); got a bare number at "
        "returns[0]")
    swapped = {**old, "returns": [[1, 0.1], [1, 0.2]]}
    r = c.post("/worlds/w1/metrics", json=swapped)
    assert r.status_code == 422 and "returns[1]: ts 1 is not after the previous ts 1" in (
        r.json()["detail"])
    r = c.post("/worlds/w1/metrics", json={**old, "returns": [[2**63, 0.1]]})
    assert r.status_code == 422 and r.json()["detail"].startswith("returns.0.0: ")
    assert c.get("/worlds/w1/strategies").json() == []  # nothing stored
    c.app.state.service.store.close()


@pytest.mark.parametrize("kind", ["realized", "pro_forma"])
def test_after_and_limit_page_through_the_points(tmp_path, kind):
    c = world_app(str(tmp_path / "w.db"))
    post_in(c, [])
    full = c.get("/worlds/w1/returns", params={"kind": kind}).json()["points"]
    assert len(full) > 10
    pages, after = [], None
    while True:
        params = {"kind": kind, "limit": 7, **({} if after is None else {"after": after})}
        page = c.get("/worlds/w1/returns", params=params).json()
        assert page["world"] == "w1" and page["kind"] == kind and len(page["points"]) <= 7
        if not page["points"]:
            break
        pages += page["points"]
        after = page["points"][-1]["ts"]
    assert pages == full  # equity is the whole series', not the page's
    c.app.state.service.store.close()
