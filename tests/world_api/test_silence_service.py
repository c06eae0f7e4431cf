"""Silence through the WorldService (issue 24 §4): the world's clock ticks every world; a
paper run that stops reporting loses its weight with a stored event and a hint, kept over a
restart, and gets it back when it reports again (SQLite and PostgreSQL; a fixed clock),
then once against a real ``qmtl world serve`` ticking fast."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from tests.world_api.conftest import free_port
from world_api.service.app import create_app
from world_api.service.state import WorldService
from world_api.service.store import open_store
from world_api.service.ticker import tick_worlds

ROOT = Path(__file__).resolve().parents[2]
S = 10**9
POLICY = "max_silence: 120\ntop_k: 2\ngates: {sharpe: '>= 0.5'}"


def upd(sid, seq, mode="paper", sharpe=1.0):
    return {
        "world": "w1",
        "strategy_id": sid,
        "run_id": f"{mode}-1",
        "seq": seq,
        "mode": mode,
        "as_of": seq,
        "n_bars": seq,
        "metrics": {"sharpe": sharpe},
        "returns": [[seq * 60 * S, 0.001 * (seq % 3 - 1)]],
    }


def test_silence_costs_the_weight_and_a_report_brings_it_back(store_url):
    store = open_store(store_url)
    app = create_app(store, insecure_dev=True, tick=0)  # the test ticks with its own clock
    svc: WorldService = app.state.service
    with TestClient(app) as c:
        assert c.post("/worlds", json={"id": "w1"}).status_code == 201
        assert c.put("/worlds/w1/policy", content=POLICY).status_code == 200
        c.post("/worlds/w1/metrics", json=[upd("a", 1), upd("bt", 1, "backtest")])
        assert c.get("/worlds/w1/allocations").json()["weights"] == {"a": 0.5, "bt": 0.5}
        heard = svc.engine("w1").strategies["a"].records["paper"].last_seen
        assert tick_worlds(svc, heard + 120 * S) == []
        events = tick_worlds(svc, heard + 312 * S)
        assert [(e.strategy_id, e.active, e.weight, e.reason) for e in events] == [
            ("a", False, 0.0, "deactivated: no update for 312 s > max_silence 120 s"),
            ("bt", True, 1.0, "weight rebalance"),
        ]
        view = c.get("/worlds/w1/strategies/a").json()
        assert view["hints"] == ["no update for 312 s > max_silence 120 s"]
        stored = [e.reason for e in store.events_after("w1", 0)]
        assert "deactivated: no update for 312 s > max_silence 120 s" in stored
    # a restart keeps it silent, with its hint
    app = create_app(open_store(store_url), insecure_dev=True, tick=0)
    with TestClient(app) as c:
        assert c.get("/worlds/w1/strategies/a").json()["status"] == "rejected"
        r = c.post("/worlds/w1/metrics", json=[upd("a", 2)])
        assert [(e["strategy_id"], e["active"]) for e in r.json()["events"]] == [
            ("a", True),
            ("bt", True),
        ]
        assert c.get("/worlds/w1/allocations").json()["weights"] == {"a": 0.5, "bt": 0.5}
        assert c.get("/worlds/w1/strategies/a").json()["hints"] == []


def _wait(fn, what, limit=60.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        out = fn()
        if out:
            return out
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_real_world_serve_ticks_its_clock(tmp_path):
    """``qmtl world serve --tick 0.2`` with ``max_silence: 1``: a paper strategy that stops
    reporting is deactivated with the hint, and comes back on its next update."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "qmtl.cli",
            "world",
            "serve",
            "--port",
            str(port),
            "--store",
            str(tmp_path / "w.db"),
            "--insecure-dev",
            "--tick",
            "0.2",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    try:
        with httpx.Client(base_url=url, timeout=30) as c:

            def up():
                try:
                    return c.get("/worlds").status_code == 200
                except httpx.TransportError:
                    assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                    return False

            _wait(up, "the server")
            c.post("/worlds", json={"id": "w1"}).raise_for_status()
            c.put("/worlds/w1/policy", content="max_silence: 1").raise_for_status()
            c.post("/worlds/w1/metrics", json=[upd("a", 1)]).raise_for_status()
            assert c.get("/worlds/w1/allocations").json()["weights"] == {"a": 1.0}

            def silent():
                view = c.get("/worlds/w1/strategies/a").json()
                return view if not view["active"] else None

            view = _wait(silent, "the silence")
            assert view["weight"] == 0.0 and len(view["hints"]) == 1
            assert view["hints"][0].startswith("no update for ")
            assert view["hints"][0].endswith(" s > max_silence 1 s")
            assert c.get("/worlds/w1/allocations").json()["weights"] == {}
            c.post("/worlds/w1/metrics", json=[upd("a", 2)]).raise_for_status()
            assert c.get("/worlds/w1/allocations").json()["weights"] == {"a": 1.0}
    finally:
        proc.kill()
        proc.wait()
        log.close()
