"""A world's market (issue 26 §1), on SQLite and PostgreSQL: declared by an operator only
(audited, versioned like the policy, kept over a restart), invalid ones refused naming the
field, and a submission with symbols outside the universe refused with a hint naming them;
then ``qmtl world create --market`` and ``qmtl world status`` against a served world."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from qmtl.cli import app as cli_app
from tests.world_api.conftest import serve
from world_api.domain.market import parse_market
from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.store import open_store

MARKET = """
universe: {symbols: [AAPL, MSFT, GOOG], groups: {tech: [AAPL, MSFT]}}
interval: 1d
window: {start: 2015-01-01, end: 2021-12-31}
execution: {rule: next_open, spread_bps: 2, cost_bps: 1}
source: {catalog: catalog, fingerprint: ab12cd}
"""


def h(token):
    return {"Authorization": f"Bearer {token}"}


def upd(sid, seq, symbols):
    return {
        "world": "w1",
        "strategy_id": sid,
        "run_id": "bt",
        "seq": seq,
        "mode": "backtest",
        "as_of": seq,
        "n_bars": 10,
        "metrics": {"sharpe": 1.0},
        "returns": [[seq, 0.001]],
        **({"symbols": symbols} if symbols is not None else {}),
    }


def test_a_market_is_the_operators_versioned_and_audited(store_url):
    store = open_store(store_url)
    dev = create_token(store, "developer", "quant")
    op = create_token(store, "operator", "boss")
    with TestClient(create_app(store, tick=0)) as c:
        assert c.post("/worlds", json={"id": "w1"}, headers=h(op)).status_code == 201
        r = c.get("/worlds/w1/market", headers=h(dev))
        assert r.status_code == 404 and "has no market" in r.json()["detail"]
        # before a market, any symbols
        r = c.post("/worlds/w1/metrics", json=[upd("a", 1, ["TSLA"])], headers=h(dev))
        assert r.status_code == 200, r.text
        assert c.put("/worlds/w1/market", content=MARKET, headers=h(dev)).status_code == 403
        bad = c.put(
            "/worlds/w1/market", content="universe: {symbols: [A]}\ninterval: 2d", headers=h(op)
        )
        assert bad.status_code == 422 and bad.json()["detail"].startswith("interval: ")
        bad = c.put(
            "/worlds/w1/market",
            content="universe: {symbols: [A]}\nwindow: {start: 2020-01-01}",
            headers=h(op),
        )
        assert bad.status_code == 422
        assert "window: a fixed window needs both start and end" in bad.json()["detail"]
        r = c.put("/worlds/w1/market", content=MARKET, headers=h(op))
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 1
        assert r.json()["summary"] == (
            "3 symbols · 1d · window: 2015-01-01 to 2021-12-31 · next_open, 1 bps · "
            "catalog (ab12cd)"
        )
        got = c.get("/worlds/w1/market", headers=h(dev)).json()
        assert parse_market(got["market"]) == parse_market(MARKET)
        # outside the universe: refused, naming them; nothing of the request applied
        r = c.post(
            "/worlds/w1/metrics", json=[upd("b", 1, ["AAPL", "TSLA", "NFLX"])], headers=h(dev)
        )
        assert r.status_code == 422
        assert r.json()["detail"] == (
            "symbols outside world 'w1''s universe: NFLX, TSLA (its universe has 3 symbols: "
            "AAPL, MSFT, GOOG)"
        )
        assert c.get("/worlds/w1/strategies/b", headers=h(dev)).status_code == 404
        # a subset of the universe is fine
        r = c.post("/worlds/w1/metrics", json=[upd("b", 1, ["AAPL"])], headers=h(dev))
        assert r.status_code == 200
        # a new version
        r = c.put("/worlds/w1/market", content="universe: {symbols: [TSLA]}", headers=h(op))
        assert r.json()["version"] == 2
        assert (
            c.post("/worlds/w1/metrics", json=[upd("c", 1, ["TSLA"])], headers=h(dev)).status_code
            == 200
        )
        old = c.get("/worlds/w1/market?version=1", headers=h(dev)).json()
        assert old["market"]["universe"]["symbols"] == ["AAPL", "MSFT", "GOOG"]
        audit = [
            a
            for a in c.get("/worlds/w1/audit", headers=h(dev)).json()
            if a["action"] == "put_market"
        ]
        assert sorted((a["owner"], a["detail"]["version"]) for a in audit) == [
            ("boss", 1),
            ("boss", 2),
        ]
    store.close()
    with TestClient(create_app(open_store(store_url), tick=0)) as c:  # a restart keeps it
        assert c.get("/worlds/w1/market", headers=h(dev)).json()["version"] == 2
        r = c.post("/worlds/w1/metrics", json=[upd("d", 1, ["AAPL"])], headers=h(dev))
        assert r.status_code == 422 and "AAPL" in r.json()["detail"]


@pytest.mark.parametrize(
    "body",
    [
        "[1, 2]",
        "universe: {symbols: [A, A]}",
        "universe: {symbols: [A]}\nsurprise: 1",
        "universe: {symbols: [A], groups: {g: [B]}}",
        "universe: {symbols: [A]}\nexecution: {spread_bps: -1}",
        "universe: {symbols: [A]}\nsource: {}",
    ],
)
def test_bad_markets_are_422_naming_what(body, tmp_path):
    with TestClient(create_app(str(tmp_path / "w.db"), insecure_dev=True, tick=0)) as c:
        c.post("/worlds", json={"id": "w1"})
        r = c.put("/worlds/w1/market", content=body)
        assert r.status_code == 422, r.text
        assert r.json()["detail"]
        assert c.get("/worlds/w1/market").status_code == 404  # nothing half-written


def test_world_create_with_a_market_file_and_status(tmp_path):
    (tmp_path / "syms.txt").write_text("AAPL,tech\nMSFT,tech\n# later: GOOG\nXOM,energy\n")
    (tmp_path / "market.yaml").write_text(
        "universe: {file: syms.txt}\ninterval: 1d\nwindow: {last_bars: 500}\n"
    )
    store = open_store(str(tmp_path / "w.db"))
    op = create_token(store, "operator", "ops")
    with serve(create_app(store, tick=0)) as url:
        run = CliRunner().invoke(
            cli_app,
            [
                "world",
                "create",
                "W",
                "--market",
                str(tmp_path / "market.yaml"),
                "--url",
                url,
                "--token",
                op,
            ],
        )
        assert run.exit_code == 0, run.output
        said = " ".join(run.output.split())
        assert "market from" in said and "is version 1: 3 symbols" in said
        status = CliRunner().invoke(cli_app, ["world", "status", "W", "--url", url, "--token", op])
        assert status.exit_code == 0, status.output
        assert "market: v1 · 3 symbols · 1d · window: last 500 bars · close, 0 bps" in (
            " ".join(status.output.split())
        )
        got = store.get_market("W")[1]
        assert got.universe.groups == {"tech": ["AAPL", "MSFT"], "energy": ["XOM"]}
        (tmp_path / "bad.yaml").write_text("universe: {file: nowhere.txt}\n")
        bad = CliRunner().invoke(
            cli_app,
            ["world", "market", "W", str(tmp_path / "bad.yaml"), "--url", url, "--token", op],
        )
        assert bad.exit_code != 0 and "cannot read the universe file" in bad.output
        shown = CliRunner().invoke(cli_app, ["world", "market", "W", "--url", url, "--token", op])
        assert "market v1 · 3 symbols" in " ".join(shown.output.split())
    store.close()
