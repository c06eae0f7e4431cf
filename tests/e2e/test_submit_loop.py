"""The whole loop: strategies are backtested, their metrics stream to a real WorldService
(uvicorn, SQLite), and the snapshot, the SSE stream and the SubmitResults agree."""

from __future__ import annotations

import httpx
import pytest
from typer.testing import CliRunner

from connectors.data.synthetic import generate_bars
from qmtl import Strategy, submit
from qmtl.cli import app as cli_app
from tests.world_api.conftest import serve
from world_api.client import WorldServiceClient
from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.store import open_store

POLICY = """
min_bars: 300
gates: {max_drawdown: "<= 0.9"}
score: {sharpe: 1.0}
top_k: 2
max_correlation: 0.95
allocation: {method: inverse_vol, max_weight: 0.7}
"""

DATA = {s: generate_bars(1_200, seed=i) for i, s in enumerate(["AAA", "BBB", "CCC"])}


class Trend(Strategy):
    symbols = ["AAA", "BBB"]
    fast: int = 10
    slow: int = 50

    def signal(self, bars):
        return bars.close.sma(self.fast) > bars.close.sma(self.slow)


class Reversion(Strategy):
    symbols = ["CCC"]

    def signal(self, bars):
        return (bars.close.rsi(14) < 40) * 1.0


class Short(Strategy):
    symbols = ["AAA"]

    def signal(self, bars):
        return -1.0


@pytest.fixture
def world(tmp_path):
    store = open_store(str(tmp_path / "world.db"))
    op = create_token(store, "operator", "ops")
    dev = create_token(store, "developer", "quant")
    app = create_app(store)
    with serve(app) as url:
        auth = {"Authorization": f"Bearer {op}"}
        assert httpx.post(f"{url}/worlds", json={"id": "demo", "capital": 1e6},
                          headers=auth).status_code == 201
        assert httpx.put(f"{url}/worlds/demo/policy", content=POLICY,
                         headers=auth).status_code == 200
        yield url, dev, op
    store.close()


def test_three_submissions_agree_with_snapshot_and_stream(world):
    url, dev, _ = world
    results = {
        "trend": submit(Trend, "demo", url, dev, strategy_id="trend", data=DATA, batch_size=200),
        "trend-fast": submit(Trend, "demo", url, dev, strategy_id="trend-fast", data=DATA,
                             batch_size=200, fast=5, slow=20),
        "reversion": submit(Reversion, "demo", url, dev, strategy_id="reversion", data=DATA,
                            batch_size=200, metrics_every=200),
    }
    headers = {"Authorization": f"Bearer {dev}"}
    snap = httpx.get(f"{url}/worlds/demo/activation", headers=headers).json()
    table = {r["strategy_id"]: r for r in snap["strategies"]}
    for sid, res in results.items():
        # the final state of each strategy: the world's answer at the end of the loop
        view = httpx.get(f"{url}/worlds/demo/strategies/{sid}", headers=headers).json()
        assert res.n_bars == 1_200 == view["n_bars"]
        assert res.metrics == pytest.approx(view["metrics"])
        assert table[sid]["status"] == view["status"]
    active = {sid for sid, r in table.items() if r["active"]}
    assert 1 <= len(active) <= 2
    assert sum(r["weight"] for r in table.values()) <= 1 + 1e-9

    with WorldServiceClient(url, dev) as client:
        stream = [(e.seq, e.model_dump()) for e in client.event_list("demo")]
    assert [seq for seq, _ in stream] == list(range(1, snap["seq"] + 1))
    replayed: dict[str, tuple[bool, float]] = {}
    for _, ev in stream:
        replayed[ev["strategy_id"]] = (ev["active"], ev["weight"])
    assert {k for k, v in replayed.items() if v[0]} == active
    for sid in active:
        assert replayed[sid][1] == pytest.approx(table[sid]["weight"])

    # metrics streamed while the replay ran: one update per 200 bars (1,200 bars in all)
    audit = httpx.get(f"{url}/worlds/demo/audit", headers=headers).json()
    posts = [a for a in audit if a["action"] == "post_metrics"
             and a["detail"]["strategies"] == ["reversion"]]
    assert len(posts) == 6


def test_rejected_strategy_gets_concrete_hints(world):
    url, dev, _ = world
    short_history = {"AAA": {k: v[:200] for k, v in DATA["AAA"].items()}}
    res = submit(Short, "demo", url, dev, data=short_history)
    assert res.status == "rejected"
    assert "only 200 bars < min_bars 300: extend --start" in res.improvement_hints


def test_cli_submit_dry_run_status_and_events(world, tmp_path):
    url, dev, _ = world
    catalog = tmp_path / "catalog"
    runner = CliRunner()
    assert runner.invoke(cli_app, ["data", "demo", "--data", str(catalog), "--bars",
                                   "800"]).exit_code == 0
    strat = tmp_path / "trend.py"
    strat.write_text(
        "from qmtl import Strategy\n\n"
        "class Trend(Strategy):\n"
        "    symbols = ['AAPL']\n"
        "    def signal(self, bars):\n"
        "        return bars.close.sma(10) > bars.close.sma(50)\n"
    )
    common = ["--world", "demo", "--url", url, "--token", dev, "--data", str(catalog)]
    dry = runner.invoke(cli_app, ["submit", str(strat), *common, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "dry run" in dry.output
    headers = {"Authorization": f"Bearer {dev}"}
    assert httpx.get(f"{url}/worlds/demo/activation", headers=headers).json()["seq"] == 0

    real = runner.invoke(cli_app, ["submit", str(strat), *common])
    assert real.exit_code == 0, real.output
    assert "active" in real.output and "sharpe" in real.output
    # the world's pro forma metrics before and after it joined, as the API says them
    assert "world (pro forma)" in real.output
    after = httpx.get(f"{url}/worlds/demo/metrics", headers={"Authorization": f"Bearer {dev}"})
    sharpe_after = after.json()["pro_forma"]["metrics"]["sharpe"]
    world_row = next(line for line in real.output.splitlines()
                     if "sharpe" in line and "│" in line and line.count("│") >= 4)
    assert f"{sharpe_after:.3f}" in world_row
    status = runner.invoke(cli_app, ["world", "status", "demo", "--url", url, "--token", dev])
    assert status.exit_code == 0 and "Trend" in status.output
    events = runner.invoke(cli_app, ["world", "events", "demo", "--url", url, "--token", dev])
    assert events.exit_code == 0 and '"strategy_id": "Trend"' in events.output

    denied = runner.invoke(cli_app, ["world", "create", "other", "--url", url, "--token", dev])
    assert denied.exit_code == 1 and "needs 'operator'" in denied.output
    offline = runner.invoke(cli_app, ["submit", str(strat), "--world", "demo", "--url",
                                      "http://127.0.0.1:9", "--data", str(catalog)])
    assert offline.exit_code == 1 and "cannot reach the world service" in offline.output
