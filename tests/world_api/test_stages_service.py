"""Stages through the WorldService: moves are stored events on the stream, approval needs an
operator and is audited, and stages survive a restart (SQLite and PostgreSQL)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.world_api.service.conftest import streamed
from world_api.service.app import create_app
from world_api.service.auth import create_token, token_id
from world_api.service.store import open_store

POLICY = """
min_bars: 10
top_k: 5
promotion:
  paper: {min_bars: 100, gates: {sharpe: ">= 0.8"}}
  live:  {min_paper_bars: 50, gates: {sharpe: ">= 0.5"}, approval: operator}
  demote: {max_drawdown: "> 0.3"}
"""


def upd(sid, seq, mode, n_bars, sharpe, dd=0.1):
    return {"world": "w1", "strategy_id": sid, "run_id": f"{mode}-1", "seq": seq, "mode": mode,
            "as_of": seq, "n_bars": n_bars, "metrics": {"sharpe": sharpe, "max_drawdown": dd},
            "returns": [[seq * 100 + i, 0.001 * ((i % 3) - 1)] for i in range(5)]}


def h(token):
    return {"Authorization": f"Bearer {token}"}


def test_stage_moves_events_approval_and_restart(store_url):
    store = open_store(store_url)
    dev = create_token(store, "developer", "quant")
    op = create_token(store, "operator", "boss")
    app = create_app(store)
    with TestClient(app) as c:
        assert c.post("/worlds", json={"id": "w1"}, headers=h(op)).status_code == 201
        r = c.put("/worlds/w1/policy", content="promotion: {live: {approval: later}}",
                  headers=h(op))
        assert r.status_code == 422
        assert "promotion.live.approval" in r.json()["detail"]
        assert c.put("/worlds/w1/policy", content=POLICY, headers=h(op)).status_code == 200
        r = c.post("/worlds/w1/metrics", json=[upd("a", 1, "backtest", 120, 1.0),
                                               upd("b", 1, "backtest", 120, 0.2)], headers=h(dev))
        assert r.status_code == 200
        moves = [e for e in r.json()["events"] if e["stage"]]
        assert [(e["strategy_id"], e["stage"]) for e in moves] == [("a", "paper")]
        # not waiting yet: 409 with the reason
        r = c.post("/worlds/w1/strategies/a/approve", headers=h(op))
        assert r.status_code == 409 and "paper record 0 bars < 50" in r.json()["detail"]
        c.post("/worlds/w1/metrics", json=[upd("a", 2, "paper", 60, 0.7)], headers=h(dev))
        view = c.get("/worlds/w1/strategies/a", headers=h(dev)).json()
        assert (view["stage"], view["awaiting_approval"]) == ("paper", True)
        rows = {r["strategy_id"]: r for r in c.get("/worlds/w1/activation", headers=h(dev))
                .json()["strategies"]}
        assert rows["a"]["stage"] == "paper" and rows["b"]["stage"] == "backtest"
        # a developer may not approve; an unknown strategy is 404
        assert c.post("/worlds/w1/strategies/a/approve", headers=h(dev)).status_code == 403
        assert c.post("/worlds/w1/strategies/zz/approve", headers=h(op)).status_code == 404
        r = c.post("/worlds/w1/strategies/a/approve", headers=h(op))
        assert r.status_code == 200, r.text
        [ev] = r.json()["events"]
        assert ev["stage"] == "live" and ev["reason"].startswith(f"approved by {token_id(op)}")
        assert c.post("/worlds/w1/strategies/a/approve", headers=h(op)).status_code == 409
        audit = [a for a in c.get("/worlds/w1/audit", headers=h(op)).json()
                 if a["action"] == "approve"]
        assert [(a["actor"], a["detail"]["strategy_id"]) for a in audit] == [(token_id(op), "a")]
        stream = [(e["strategy_id"], e["stage"]) for _, e in streamed(_as(c, dev))
                  if e["stage"]]
        assert stream == [("a", "paper"), ("a", "live")]
        before = c.get("/worlds/w1/strategies", headers=h(dev)).json()
    app.state.service.store.close()

    # a new process on the same store: same stages, same events, and the rules go on
    store = open_store(store_url)
    app = create_app(store)
    with TestClient(app) as c:
        assert c.get("/worlds/w1/strategies", headers=h(dev)).json() == before
        stream = [(e["strategy_id"], e["stage"]) for _, e in streamed(_as(c, dev))
                  if e["stage"]]
        assert stream == [("a", "paper"), ("a", "live")]
        r = c.post("/worlds/w1/metrics", json=[upd("a", 3, "live", 10, 0.1, dd=0.4)],
                   headers=h(dev))
        [ev] = [e for e in r.json()["events"] if e["stage"]]
        assert (ev["stage"], ev["reason"]) == ("paper", "demoted: live max_drawdown 0.4 > 0.3")
    app.state.service.store.close()


def _as(c: TestClient, token: str) -> TestClient:
    c.headers.update(h(token))  # later requests give their own header where it matters
    return c


def test_cli_approve_says_why_it_cannot(tmp_path):
    """``qmtl world approve`` exits 1 with the world's reason when the strategy does not wait
    for approval, and 0 once it does."""
    from typer.testing import CliRunner

    from qmtl.cli import app as cli
    from tests.world_api.conftest import serve

    app = create_app(str(tmp_path / "w.db"), insecure_dev=True)
    try:
        with serve(app) as url, TestClient(app) as c:
            c.post("/worlds", json={"id": "w1"})
            c.put("/worlds/w1/policy", content=POLICY)
            c.post("/worlds/w1/metrics", json=[upd("a", 1, "backtest", 120, 1.0)])
            out = CliRunner().invoke(cli, ["world", "approve", "w1", "a", "--url", url])
            assert out.exit_code == 1
            assert "not waiting for approval" in out.output
            assert "paper record 0 bars < 50" in out.output
            c.post("/worlds/w1/metrics", json=[upd("a", 2, "paper", 60, 0.7)])
            out = CliRunner().invoke(cli, ["world", "approve", "w1", "a", "--url", url])
            assert out.exit_code == 0, out.output
            assert "a is live in world w1" in out.output
    finally:
        app.state.service.store.close()
