"""Records per stage survive the store's migrations (issue 24 §1), on SQLite and PostgreSQL:
a strategy state stored before records (its stage records under ``stage.records``, one ring
for all modes) gets them when the store is opened, and its realized return is not counted
again; the records then survive a restart of the service."""

from __future__ import annotations

import base64
import json
import struct

import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.db_versions import write_v0
from tests.world_api.service.test_store_migrations import V0_DDL
from world_api.service import tables
from world_api.service.app import create_app
from world_api.service.store import open_store

# a state as the store held it before records (commit d8e76b1): a 2,000-bar backtest, then
# the first update of a paper run; one ring of 3 returns for both
OLD_STATE = {
    "sid": "s",
    "metrics": {"sharpe": -2.0},
    "n_bars": 1,
    "seqs": {"bt": 4, "p": 1},
    "run_bars": {"bt": 2000, "p": 1},
    "returns_b64": base64.b64encode(struct.pack("<3d", 0.01, -0.02, 0.005)).decode(),
    "ts_b64": base64.b64encode(struct.pack("<3q", 10, 20, 30)).decode(),
    "total_returns": 3,
    "active": True,
    "weight": 1.0,
    "changed_clock": 3,
    "stage": {
        "stage": "backtest",
        "pending": False,
        "records": {
            "backtest": {"runs": {"bt": 2000}, "metrics": {"sharpe": 1.5}},
            "paper": {"runs": {"p": 1}, "metrics": {"sharpe": -2.0}},
        },
    },
}
POLICY = '{"min_bars": 300}'


def rows() -> list[tuple[str, list]]:
    return [
        ("INSERT INTO schema_version (version) VALUES (?)", [1]),
        (
            "INSERT INTO worlds (id, name, capital, mode, created, seq, policy_version) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            ["w1", "demo", 1e6, "paper", 11, 0, 1],
        ),
        (
            "INSERT INTO policies (world, version, body, created) VALUES (?, ?, ?, ?)",
            ["w1", 1, POLICY, 12],
        ),
        (
            "INSERT INTO strategy_state (world, strategy_id, state) VALUES (?, ?, ?)",
            ["w1", "s", json.dumps(OLD_STATE)],
        ),
    ]


def stored_state(store) -> dict:
    with store.transaction() as conn:
        text = conn.execute(sa.select(tables.strategy_state.c.state)).scalar_one()
    return json.loads(text)


def test_an_old_store_gets_records_per_stage(store_url):
    write_v0(store_url, V0_DDL, rows())
    store = open_store(store_url)
    try:
        state = stored_state(store)
        recs = state["records"]
        assert {m: (r["runs"], r["metrics"]) for m, r in recs.items()} == {
            "backtest": ({"bt": 2000}, {"sharpe": 1.5}),
            "paper": ({"p": 1}, {"sharpe": -2.0}),
        }
        assert state["realized_ts"] == 30 and "records" not in state["stage"]
        with TestClient(create_app(store, insecure_dev=True, tick=0)) as c:
            view = c.get("/worlds/w1/strategies/s").json()
            # the old code read the paper run's 1 bar; the backtest record is read now
            assert (view["status"], view["record"], view["n_bars"]) == ("active", "backtest", 2000)
            assert view["records"]["paper"]["n_bars"] == 1
            # a paper return at 30 was realized already by the old store: not again
            upd = {
                "world": "w1",
                "strategy_id": "s",
                "run_id": "p",
                "seq": 2,
                "mode": "paper",
                "as_of": 2,
                "n_bars": 5,
                "metrics": {"sharpe": -2.0},
                "returns": [[30, 0.005], [40, 0.01]],
            }
            assert c.post("/worlds/w1/metrics", json=[upd]).status_code == 200
            assert c.get("/worlds/w1/returns").json()["points"] == [
                {"ts": 40, "return": 0.01, "equity": 1.01}
            ]
    finally:
        store.close()
    again = open_store(store_url)  # a restart keeps the records
    try:
        with TestClient(create_app(again, insecure_dev=True, tick=0)) as c:
            view = c.get("/worlds/w1/strategies/s").json()
            assert view["records"]["paper"]["n_bars"] == 5
            assert view["records"]["backtest"]["n_bars"] == 2000 and view["active"]
    finally:
        again.close()
