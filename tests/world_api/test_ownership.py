"""A developer owns their strategies, over HTTP against the real app (uvicorn), on SQLite and
PostgreSQL: another developer's update is 403 naming the owner and changes nothing;
operators may post and transfer (audited); a world may restrict its submitters; a store
made before owners gets them from its audit log (else operator-owned); the world
re-checks an update's metrics against its own returns."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
import sqlalchemy as sa

from dataflows.metrics import MetricSet
from qmtl.core.contracts import MetricsUpdate
from tests.world_api.conftest import serve
from world_api.client import ForbiddenError, InvalidRequestError, WorldServiceClient
from world_api.service import tables
from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.store import VERSION_TABLE, open_store

DAY = 86_400 * 10**9


def update(
    sid: str, run: str, seq: int, sharpe: float, n: int = 50, seed: int = 0, **kw
) -> MetricsUpdate:
    """An update of ``n`` bars carrying only its last return (so nothing to recompute)."""
    r = float(np.random.default_rng(seed).normal(0.001, 0.01))
    return MetricsUpdate(
        world="w",
        strategy_id=sid,
        run_id=run,
        seq=seq,
        mode="backtest",
        as_of=n * DAY,
        n_bars=n,
        metrics={"sharpe": sharpe, **kw},
        returns=[(n * DAY, r)],
    )


@pytest.fixture
def world(store_url):
    """A served world ``w`` (policy: gate sharpe >= 0), and clients for an operator,
    developers alice and bob, and a viewer."""
    store = open_store(store_url)
    tokens = {
        name: create_token(store, role, name)
        for name, role in [
            ("ops", "operator"),
            ("alice", "developer"),
            ("bob", "developer"),
            ("eve", "viewer"),
        ]
    }
    with serve(create_app(store)) as url:
        clients = {n: WorldServiceClient(url, tok) for n, tok in tokens.items()}
        clients["ops"].create_world("w")
        clients["ops"].put_policy("w", 'gates: {sharpe: ">= 0"}')
        yield clients
        for c in clients.values():
            c.close()
    store.close()


def test_another_developer_cannot_post_under_my_strategy_id(world):
    alice, bob, ops = world["alice"], world["bob"], world["ops"]
    alice.post_metrics("w", [update("alpha", "r1", 1, 1.5)])
    assert alice.strategy("w", "alpha")["status"] == "active"
    # today: bob's new run with sharpe -3 moved alice's strategy to rejected
    with pytest.raises(ForbiddenError) as err:
        bob.post_metrics("w", [update("alpha", "bob-run", 1, -3.0)])
    assert err.value.status == 403
    assert "belongs to owner 'alice'" in str(err.value) and "'bob'" in str(err.value)
    assert alice.strategy("w", "alpha")["status"] == "active"
    assert alice.strategy("w", "alpha")["metrics"]["sharpe"] == 1.5
    # a mixed request is refused whole
    with pytest.raises(ForbiddenError):
        bob.post_metrics("w", [update("beta", "b", 1, 1.0), update("alpha", "b", 1, -3.0)])
    with pytest.raises(Exception, match="404"):
        alice.strategy("w", "beta")
    # bob's own strategy is his; alice cannot post to it
    bob.post_metrics("w", [update("beta", "b", 1, 1.0)])
    with pytest.raises(ForbiddenError, match="belongs to owner 'bob'"):
        alice.post_metrics("w", [update("beta", "a", 1, -1.0)])
    # the owner keeps posting; operators are unchanged: they may post to any strategy
    alice.post_metrics("w", [update("alpha", "r1", 2, 1.2, n=60)])
    ops.post_metrics("w", [update("alpha", "ops-run", 1, 1.1, n=61)])
    assert {o["strategy_id"]: o["owner"] for o in alice.owners("w")} == {
        "alpha": "alice",
        "beta": "bob",
    }
    # viewers still cannot post
    with pytest.raises(ForbiddenError, match="role 'viewer'"):
        world["eve"].post_metrics("w", [update("gamma", "e", 1, 1.0)])


def test_operators_transfer_a_strategy_audited(world):
    alice, bob, ops = world["alice"], world["bob"], world["ops"]
    alice.post_metrics("w", [update("alpha", "r1", 1, 1.5)])
    with pytest.raises(ForbiddenError, match="needs 'operator'"):
        bob.transfer_owner("w", "alpha", "bob")
    assert ops.transfer_owner("w", "alpha", "bob")["owner"] == "bob"
    assert alice.owner("w", "alpha") == {
        "world": "w",
        "strategy_id": "alpha",
        "owner": "bob",
        "operator_owned": False,
    }
    bob.post_metrics("w", [update("alpha", "b", 1, 0.5)])
    with pytest.raises(ForbiddenError, match="belongs to owner 'bob'"):
        alice.post_metrics("w", [update("alpha", "r1", 2, 1.0, n=60)])
    row = ops.audit("w", action="transfer_owner")[0]
    assert row["detail"] == {"strategy_id": "alpha", "from": "alice", "to": "bob"}
    assert row["owner"] == "ops"
    # operator-owned: no developer may post
    ops.transfer_owner("w", "alpha", None)
    with pytest.raises(ForbiddenError, match="operator-owned"):
        bob.post_metrics("w", [update("alpha", "b", 2, 0.5, n=60)])
    with pytest.raises(Exception, match="404"):
        ops.transfer_owner("w", "nobody", "bob")


def test_a_world_restricts_its_submitters(world):
    alice, bob, ops = world["alice"], world["bob"], world["ops"]
    assert alice.submitters("w") is None
    with pytest.raises(ForbiddenError):
        alice.set_submitters("w", ["alice"])
    assert ops.set_submitters("w", ["alice"]) == ["alice"]
    alice.post_metrics("w", [update("alpha", "r1", 1, 1.5)])
    with pytest.raises(ForbiddenError, match="owner 'bob' may not submit to world 'w'"):
        bob.post_metrics("w", [update("beta", "b", 1, 1.0)])
    ops.post_metrics("w", [update("gamma", "o", 1, 1.0)])  # operators are not restricted
    assert ops.set_submitters("w", None) is None
    bob.post_metrics("w", [update("beta", "b", 1, 1.0)])
    assert [r["detail"]["to"] for r in ops.audit("w", action="set_submitters")] == [None, ["alice"]]


def test_metrics_that_disagree_with_their_own_returns_are_refused(world):
    alice = world["alice"]
    r = np.random.default_rng(3).normal(0.0005, 0.01, 300)
    ts = [(i + 1) * DAY for i in range(300)]
    honest = MetricSet(252).update(r).finite()
    base = MetricsUpdate(
        world="w",
        strategy_id="s",
        run_id="r",
        seq=1,
        mode="backtest",
        as_of=ts[-1],
        n_bars=300,
        metrics=honest,
        returns=list(zip(ts, r.tolist(), strict=True)),
    )
    lie = base.model_copy(update={"metrics": {**honest, "sharpe": honest["sharpe"] + 2.0}})
    with pytest.raises(InvalidRequestError) as err:
        alice.post_metrics("w", [lie])
    assert err.value.status == 422
    assert "metrics.sharpe: claimed" in str(err.value)
    assert f"off by {2.0:.6g}" in str(err.value)
    short = base.model_copy(update={"n_bars": 299})
    with pytest.raises(InvalidRequestError, match="300 returns for n_bars 299"):
        alice.post_metrics("w", [short])
    with pytest.raises(InvalidRequestError, match=r"metrics.n_bars: claimed 300 but n_bars"):
        alice.post_metrics("w", [base.model_copy(update={"n_bars": 400})])
    # a client annualizing daily bars by 365 (not 252) is believed (within 2x)
    crypto = MetricSet(365).update(r).finite()
    alice.post_metrics("w", [base.model_copy(update={"metrics": crypto})])
    assert alice.strategy("w", "s")["metrics"]["sharpe"] == crypto["sharpe"]
    # nothing refused was stored
    assert [o["strategy_id"] for o in alice.owners("w")] == ["s"]


def test_the_owners_of_an_older_store_come_from_its_audit_log(store_url):
    store = open_store(store_url)
    alice = create_token(store, "developer", "alice")
    ops = create_token(store, "operator", "ops")
    with serve(create_app(store)) as url:
        a, o = WorldServiceClient(url, alice), WorldServiceClient(url, ops)
        o.create_world("w")
        a.post_metrics("w", [update("alpha", "r", 1, 1.0)])
        o.post_metrics("w", [update("alpha", "o", 1, 1.0), update("gone", "o", 1, 1.0)])
        a.close()
        o.close()
    # back to revision 0006: no owners; "gone" was posted by a token since deleted
    with store.transaction() as conn:
        conn.execute(sa.text("DROP TABLE strategy_owners"))
        conn.execute(sa.text("DROP TABLE world_submitters"))
        # and the tables of later revisions (0009_records_market, 0010_runner)
        for later in ("markets", "artifacts", "runners", "runner_leases"):
            conn.execute(sa.text(f"DROP TABLE {later}"))
        conn.execute(sa.text("ALTER TABLE world_returns DROP COLUMN source"))  # 0011
        conn.execute(
            sa.update(tables.audit)
            .where(tables.audit.c.actor == ops.split("_")[1])
            .values(actor="deleted-token")
        )
        conn.execute(sa.text(f"UPDATE {VERSION_TABLE} SET version_num = '0006'"))
    store.close()
    store = open_store(store_url)
    try:
        with store.transaction() as conn:
            owners = dict(
                conn.execute(
                    sa.select(tables.strategy_owners.c.strategy_id, tables.strategy_owners.c.owner)
                ).all()
            )
        assert owners == {"alpha": "alice", "gone": None}
        bob = create_token(store, "developer", "bob")
        with serve(create_app(store)) as url, WorldServiceClient(url, bob) as b:
            with pytest.raises(ForbiddenError, match="operator-owned"):
                b.post_metrics("w", [update("gone", "b", 1, 1.0)])
            with pytest.raises(ForbiddenError, match="belongs to owner 'alice'"):
                b.post_metrics("w", [update("alpha", "b", 1, 1.0)])
    finally:
        store.close()


def test_an_unauthenticated_post_is_still_401(world):
    url = world["alice"].url
    r = httpx.post(f"{url}/worlds/w/metrics", content=update("x", "r", 1, 1.0).model_dump_json())
    assert r.status_code == 401
