"""Issue 24's reproduction through the WorldService (SQLite and PostgreSQL): min_bars 300, a
2,000-bar backtest posted in chunks activates a strategy and realizes nothing; the paper
run's first update (1 bar) does not deactivate it, its paper record grows while the backtest
record stays, over a restart of the service."""

from __future__ import annotations

import numpy as np
from fastapi.testclient import TestClient

from world_api.service.app import create_app
from world_api.service.store import open_store

RNG = np.random.default_rng(11)
DAY = 86_400 * 10**9


def chunk(seq, mode, run, lo, hi, n_bars, sharpe):
    return {
        "world": "w1",
        "strategy_id": "s",
        "run_id": run,
        "seq": seq,
        "mode": mode,
        "as_of": hi * DAY,
        "n_bars": n_bars,
        "metrics": {"sharpe": sharpe},
        "returns": [[t * DAY, float(RNG.normal(0.0005, 0.01))] for t in range(lo, hi)],
    }


def test_a_paper_start_keeps_what_the_backtest_activated(store_url):
    policy = "min_bars: 300\ngates: {sharpe: '>= 0.5'}"
    with TestClient(create_app(open_store(store_url), insecure_dev=True, tick=0)) as c:
        c.post("/worlds", json={"id": "w1"})
        assert c.put("/worlds/w1/policy", content=policy).status_code == 200
        events = []
        for seq, lo in enumerate(range(0, 2_000, 500), start=1):
            # one warm-up bar more than returns: the world takes the claimed Sharpe as sent
            r = c.post(
                "/worlds/w1/metrics",
                json=[chunk(seq, "backtest", "bt", lo, lo + 500, lo + 501, 1.2)],
            )
            events += r.json()["events"]
        assert [(e["active"], e["weight"]) for e in events] == [(True, 1.0)]
        assert c.get("/worlds/w1/metrics").json()["realized"]["n_bars"] == 0
        r = c.post("/worlds/w1/metrics", json=[chunk(1, "paper", "live1", 2_001, 2_002, 1, -3.0)])
        assert r.json()["events"] == []  # not deactivated by its own live start
    with TestClient(create_app(open_store(store_url), insecure_dev=True, tick=0)) as c:
        view = c.get("/worlds/w1/strategies/s").json()
        assert (view["active"], view["record"], view["n_bars"]) == (True, "backtest", 2_001)
        assert view["records"]["paper"]["n_bars"] == 1
        r = c.post("/worlds/w1/metrics", json=[chunk(2, "paper", "live1", 2_002, 2_012, 11, -3.0)])
        assert r.json()["events"] == []
        view = c.get("/worlds/w1/strategies/s").json()
        assert view["records"]["paper"]["n_bars"] == 11 and view["active"]
        assert view["records"]["backtest"]["n_bars"] == 2_001
        assert view["records"]["backtest"]["metrics"] == {"sharpe": 1.2}
        # its paper returns are realized (11), its backtest's none
        assert c.get("/worlds/w1/metrics").json()["realized"]["n_bars"] == 11
