"""Artifacts and runners over HTTP against the real app, on SQLite and PostgreSQL: a
developer stores the artifact of a strategy it owns; runners, operators and the owner read
it whole, other developers and viewers its metadata only; bad, tampered, foreign or too
large artifacts are refused and change nothing; a runner posts for strategies the world
holds (any owner) but claims none; runners split a world's strategies by lease, and one
that stops heartbeating has them taken over once its leases expire."""

from __future__ import annotations

import textwrap

import pytest

from connectors.data.synthetic import generate_bars
from qmtl.artifact import artifact_id, build_artifact, graph_id, verify
from qmtl.core.contracts import MetricsUpdate
from qmtl.loader import load_strategy
from qmtl.submit import submit
from tests.world_api.conftest import serve
from world_api import runner_client as rc
from world_api.client import (
    ForbiddenError,
    InvalidRequestError,
    NotFoundError,
    WorldServiceClient,
    WorldServiceError,
)
from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.routers import artifacts as artifacts_router
from world_api.service.store import open_store

DAY = 86_400 * 10**9
SOURCE = textwrap.dedent("""
    from qmtl import Strategy

    class Up(Strategy):
        symbols = ["A"]
        n: int = 5

        def signal(self, bars):
            return bars.close > bars.close.sma(self.n)
""")


def update(sid: str, run: str, seq: int, mode: str = "backtest") -> MetricsUpdate:
    return MetricsUpdate(
        world="w",
        strategy_id=sid,
        run_id=run,
        seq=seq,
        mode=mode,
        as_of=seq * DAY,
        n_bars=50,
        metrics={"sharpe": 1.0},
        returns=[(seq * DAY, 0.001)],
    )


@pytest.fixture
def world(store_url):
    store = open_store(store_url)
    roles = [
        ("ops", "operator"),
        ("alice", "developer"),
        ("bob", "developer"),
        ("eve", "viewer"),
        ("r1", "runner"),
        ("r2", "runner"),
    ]
    tokens = {name: create_token(store, role, name) for name, role in roles}
    with serve(create_app(store)) as url:
        clients = {n: WorldServiceClient(url, tok) for n, tok in tokens.items()}
        clients["ops"].create_world("w")
        yield clients, store
        for c in clients.values():
            c.close()
    store.close()


@pytest.fixture
def doc(tmp_path):
    path = tmp_path / "up.py"
    path.write_text(SOURCE)
    return build_artifact(load_strategy(f"{path}:Up")(n=7), "up")


def test_who_may_store_and_read_an_artifact(world, doc):
    (c, store) = world
    with pytest.raises(NotFoundError, match="has not reported"):
        rc.put_artifact(c["alice"], "w", doc)
    c["alice"].post_metrics("w", [update("up", "bt", 1)])
    with pytest.raises(ForbiddenError, match="belongs to owner 'alice'"):
        rc.put_artifact(c["bob"], "w", doc)
    with pytest.raises(ForbiddenError):
        rc.put_artifact(c["eve"], "w", doc)
    meta = rc.put_artifact(c["alice"], "w", doc)
    assert meta["id"] == doc["id"] and "files" not in meta
    for who in ("alice", "ops", "r1"):
        assert rc.artifact(c[who], "w", "up") == doc
    for who in ("bob", "eve"):
        got = rc.artifact(c[who], "w", "up")
        assert got["graph_id"] == doc["graph_id"] and "files" not in got and "params" not in got
    [row] = rc.artifacts(c["eve"], "w")
    assert (row["strategy_id"], row["artifact_id"], row["kind"]) == ("up", doc["id"], "source")
    actions = [a["action"] for a in store.audit_log("w", newest_first=True)]
    assert actions[0] == "put_artifact"


def test_bad_artifacts_change_nothing(world, doc, monkeypatch):
    (c, _store) = world
    c["alice"].post_metrics("w", [update("up", "bt", 1)])
    rc.put_artifact(c["alice"], "w", doc)
    tampered = dict(doc, params={"n": 99})
    with pytest.raises(InvalidRequestError, match="is not its content id"):
        rc.put_artifact(c["alice"], "w", tampered)
    other = dict(doc, strategy_id="up2")
    other["id"] = artifact_id(other)
    path = "/worlds/w/strategies/up/artifact"
    with pytest.raises(InvalidRequestError, match="is not 'up'"):
        c["alice"].call("PUT", path, json=other)
    with pytest.raises(InvalidRequestError, match="artifact version"):
        c["alice"].call("PUT", path, json={"qmtl_artifact": 7})
    monkeypatch.setattr(artifacts_router, "MAX_ARTIFACT_BYTES", 100)
    with pytest.raises(WorldServiceError) as err:
        rc.put_artifact(c["alice"], "w", doc)
    assert err.value.status == 413 and "exceeds the limit of 100" in str(err.value)
    assert rc.artifact(c["ops"], "w", "up") == doc


def test_runner_posts_for_held_strategies_and_claims_none(world):
    (c, _store) = world
    c["alice"].post_metrics("w", [update("up", "bt", 1)])
    c["r1"].post_metrics("w", [update("up", "paper-run", 1, mode="paper")])
    with pytest.raises(ForbiddenError, match="runner posts only for strategies"):
        c["r1"].post_metrics("w", [update("new", "x", 1, mode="paper")])
    with pytest.raises(ForbiddenError, match="needs 'operator'"):
        c["r1"].put_policy("w", "top_k: 1")
    with pytest.raises(ForbiddenError, match="needs 'runner'"):
        rc.heartbeat(c["alice"], "w", "r-a", ["up"], 5.0, {})


def test_runners_split_strategies_and_take_over_expired_leases(world):
    (c, store) = world
    want = ["a", "b", "c", "d"]
    assert rc.heartbeat(c["r1"], "w", "one", want, 30.0, {"ttl": 30.0}) == want
    assert rc.heartbeat(c["r2"], "w", "two", want, 30.0, {"ttl": 30.0}) == []
    assert rc.heartbeat(c["r1"], "w", "one", want, 30.0, {"ttl": 30.0}) == ["a", "b"]
    assert rc.heartbeat(c["r2"], "w", "two", want, 30.0, {"ttl": 30.0}) == ["c", "d"]
    listed = {r["runner"]: r for r in rc.runners(c["eve"], "w")}
    assert listed["one"]["strategies"] == ["a", "b"] and listed["two"]["alive"]
    rc.leave(c["r2"], "w", "two")
    assert rc.heartbeat(c["r1"], "w", "one", want, 30.0, {}) == want
    # a runner that stops heartbeating: its leases expire after ttl (explicit clock)
    ttl = 10 * 10**9
    t0 = 10**18
    assert store.heartbeat("w", "x", ["s"], {}, ttl, now=t0) == ["s"]
    assert store.heartbeat("w", "y", ["s"], {}, ttl, now=t0 + ttl - 1) == []
    assert store.heartbeat("w", "y", ["s"], {}, ttl, now=t0 + ttl) == ["s"]
    assert store.heartbeat("w", "x", ["s"], {}, ttl, now=t0 + ttl + 1) == []


def test_submit_stores_the_artifact_a_runner_rebuilds(world, tmp_path):
    (c, _store) = world
    path = tmp_path / "up.py"
    path.write_text(SOURCE)
    cls = load_strategy(f"{path}:Up")
    token = c["alice"].http.headers["Authorization"].split()[1]
    res = submit(cls, "w", c["alice"].url, token, data={"A": generate_bars(80, seed=1)}, n=6)
    assert res.strategy_id == "Up-n=6" and res.artifact_id is not None
    doc = rc.artifact(c["r1"], "w", "Up-n=6")
    assert doc["id"] == res.artifact_id and doc["params"] == {"n": 6}
    path.write_text(SOURCE.replace("sma(self.n)", "sma(self.n + 1)"))  # edited after submit
    rebuilt = verify(doc, tmp_path / "runner")  # the runner runs what was evaluated
    assert graph_id(rebuilt) == doc["graph_id"] == graph_id(cls(n=6))
