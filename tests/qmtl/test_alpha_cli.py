"""`qmtl run --alpha/--spec` and `qmtl submit --alpha/--spec`: the same results as the
Python API, and clear errors for the wrong combinations."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import qmtl
from connectors.data.catalog import Catalog
from qmtl.cli import app
from qmtl.loader import load_strategy
from tests.world_api.conftest import serve
from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.store import open_store

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SYMBOLS = ["AAPL", "MSFT", "NVDA", "SPY"]


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("catalog")
    got = runner.invoke(app, ["data", "demo", "--data", str(folder), "--bars", "400"])
    assert got.exit_code == 0, got.output
    return folder


def _weights(folder: Path) -> np.ndarray:
    return pq.read_table(folder / "bars.parquet").column("weight").to_numpy()


def test_run_spec_equals_the_python_api(demo_data: Path, tmp_path: Path) -> None:
    cls = load_strategy(str(EXAMPLES / "sma_cross.py"))
    spec = tmp_path / "sma.json"
    spec.write_text(json.dumps(cls(fast=5).to_spec()))
    got = runner.invoke(app, ["run", "--spec", str(spec), "--data", str(demo_data),
                              "--out", str(tmp_path / "o")])
    assert got.exit_code == 0, got.output
    want = qmtl.backtest(cls(fast=5), data=Catalog(demo_data))
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert np.array_equal(_weights(tmp_path / "o"), want.bars.column("weight").to_numpy())
    assert metrics["metrics"]["total_return"] == pytest.approx(want.metrics["total_return"],
                                                               abs=0, rel=1e-15)
    assert metrics["strategy"] == "SmaCross" and metrics["settings"]["cost_bps"] == 1.0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give a strategy file, --alpha EXPR or --spec FILE.json"),
        (["x.py", "--alpha", "rank(close)"], "give only one of a strategy file, --alpha and"),
        (["--alpha", "rank(close)", "--spec", "s.json"], "give only one of"),
        (["--spec", "s.json", "-p", "fast=3"], "-p/--param does not apply to --alpha or --spec"),
        (["--spec", "s.json", "--interval", "1h"], "--interval apply to --alpha only"),
        (["--alpha", "rank(close)"], "--alpha needs --symbols A,B,..."),
        (["--alpha", "rank(close)", "--symbols", "A", "--neutralize", "sector"],
         "--neutralize must be market, group or none"),
        (["--alpha", "rank(close)", "--mode", "live"], "--alpha needs --symbols A,B,..."),
        (["--spec", "nope.json"], "No such file or directory: nope.json"),
    ],
)
def test_wrong_combinations_are_one_line_errors(tmp_path: Path, args, message,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "s.json").write_text("{}")
    got = runner.invoke(app, ["run", *args])
    assert got.exit_code == 1, got.output
    assert got.output.startswith("error: ") and message in got.output, got.output


def test_a_bad_spec_file_names_the_node(tmp_path: Path) -> None:
    spec = tmp_path / "bad.json"
    spec.write_text(json.dumps({"qmtl_spec": 1, "symbols": ["AAPL"], "output": "w", "nodes": [
        {"id": "w", "op": "sma", "params": {"n": 3}, "inputs": []}]}))
    got = runner.invoke(app, ["run", "--spec", str(spec)])
    assert got.exit_code == 1
    assert "error: node 'w': unknown operator 'sma'" in got.output
    spec.write_text("{nope")
    got = runner.invoke(app, ["run", "--spec", str(spec)])
    assert got.exit_code == 1 and f"spec file {spec} is not valid JSON" in got.output


def test_run_alpha_equals_the_python_api(demo_data: Path, tmp_path: Path) -> None:
    text = "rank(-ts_delta(close, 5)) + 0.5 * zscore(ts_rank(volume, 10))"
    got = runner.invoke(app, ["run", "--mode", "backtest", "--alpha", text, "--symbols",
                              ",".join(SYMBOLS), "--data", str(demo_data), "--cost-bps", "2",
                              "--out", str(tmp_path / "o")])
    assert got.exit_code == 0, got.output
    want = qmtl.backtest(qmtl.alpha(text, symbols=SYMBOLS), data=Catalog(demo_data),
                         cost_bps=2.0)
    assert np.array_equal(_weights(tmp_path / "o"), want.bars.column("weight").to_numpy())
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["strategy"] == want.strategy and want.strategy.startswith("alpha-")
    assert metrics["metrics"]["sharpe"] == pytest.approx(want.metrics["sharpe"], rel=1e-15)


def test_run_alpha_with_groups_and_neutralize(demo_data: Path, tmp_path: Path) -> None:
    groups = tmp_path / "sectors.csv"
    groups.write_text("symbol,sector\nAAPL,tech\nMSFT,tech\nNVDA,tech\nSPY,index\n")
    sectors = {"AAPL": "tech", "MSFT": "tech", "NVDA": "tech", "SPY": "index"}
    for args, alpha in [
        (["--groups", str(groups)], qmtl.alpha("returns", SYMBOLS, groups=sectors)),
        (["--neutralize", "none", "--interval", "1d"],
         qmtl.alpha("returns", SYMBOLS, neutralize=None)),
    ]:
        out = tmp_path / args[0].strip("-")
        got = runner.invoke(app, ["run", "--alpha", "returns", "--symbols", ",".join(SYMBOLS),
                                  "--data", str(demo_data), "--out", str(out), *args])
        assert got.exit_code == 0, got.output
        want = qmtl.backtest(alpha, data=Catalog(demo_data))
        assert np.array_equal(_weights(out), want.bars.column("weight").to_numpy())


def test_run_alpha_syntax_error_shows_the_caret(demo_data: Path) -> None:
    got = runner.invoke(app, ["run", "--alpha", "rank(ts_delta(close 5))", "--symbols", "AAPL",
                              "--data", str(demo_data)])
    assert got.exit_code == 1
    lines = got.output.splitlines()
    assert lines[0] == "error: expected ',' or ')', got '5' at column 21"
    assert lines[1:3] == ["  rank(ts_delta(close 5))", "                      ^"]


def test_submit_alpha_and_spec_reach_the_world(demo_data: Path, tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "world.db"))
    op, dev = create_token(store, "operator", "ops"), create_token(store, "developer", "q")
    text = "rank(-ts_delta(close, 5))"
    alpha = qmtl.alpha(text, symbols=SYMBOLS)
    spec = tmp_path / "alpha.json"
    spec.write_text(json.dumps({**alpha.to_spec(), "name": "from-spec"}))
    want = qmtl.backtest(alpha, data=Catalog(demo_data))
    with serve(create_app(store)) as url:
        auth = {"Authorization": f"Bearer {op}"}
        assert httpx.post(f"{url}/worlds", json={"id": "w", "capital": 1e6},
                          headers=auth).status_code == 201
        common = ["--world", "w", "--url", url, "--token", dev, "--data", str(demo_data)]
        got = runner.invoke(app, ["submit", "--alpha", text, "--symbols", ",".join(SYMBOLS),
                                  *common])
        assert got.exit_code == 0, got.output
        got = runner.invoke(app, ["submit", "--spec", str(spec), *common])
        assert got.exit_code == 0, got.output
        headers = {"Authorization": f"Bearer {dev}"}
        for sid in (alpha.name, "from-spec"):
            view = httpx.get(f"{url}/worlds/w/strategies/{sid}", headers=headers).json()
            assert view["n_bars"] == len(want.returns)
            assert view["metrics"]["sharpe"] == pytest.approx(want.metrics["sharpe"], rel=1e-12)
    store.close()
