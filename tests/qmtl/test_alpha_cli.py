"""`qmtl run --alpha/--spec` and `qmtl submit --alpha/--spec`: the same results as the
Python API, and clear errors for the wrong combinations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import qmtl
from connectors.data.catalog import Catalog
from qmtl.cli import app
from qmtl.loader import load_strategy

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
        (["--alpha", "rank(close)", "--mode", "live"], "--mode live takes a strategy file"),
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
