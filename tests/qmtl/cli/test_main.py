"""`qmtl run --mode backtest` as a user drives it: demo data, CSV import, and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from connectors.data.synthetic import generate_bars
from qmtl.cli import app
from qmtl.core.contracts import METRIC_NAMES

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
runner = CliRunner()

SNIPPET = """
from qmtl import Strategy

class SmaCross(Strategy):
    symbols = ["AAPL"]          # the universe
    interval = "1d"             # bar interval: 1m, 5m, 15m, 1h, 4h, 1d
    fast: int = 10              # parameters, overridable from the CLI (-p fast=20)
    slow: int = 50

    def signal(self, bars):
        return bars.close.sma(self.fast) > bars.close.sma(self.slow)
"""


@pytest.fixture(scope="module")
def demo_data(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("catalog")
    got = runner.invoke(app, ["data", "demo", "--data", str(folder)])
    assert got.exit_code == 0, got.output
    return folder


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_demo_backtest_prints_metrics_and_writes_outputs(demo_data, tmp_path):
    out = tmp_path / "run"
    got = invoke("run", "--mode", "backtest", str(EXAMPLES / "sma_cross.py"),
                 "--data", str(demo_data), "--out", str(out))
    assert got.exit_code == 0, got.output
    for name in ("sharpe", "max_drawdown", "profit_factor", "n_bars"):
        assert name in got.output
    doc = json.loads((out / "metrics.json").read_text())
    assert list(doc["metrics"]) == list(METRIC_NAMES)
    assert doc["symbols"] == ["AAPL", "MSFT"]
    table = pq.read_table(out / "bars.parquet")
    assert table.column_names == ["ts", "symbol", "weight", "return", "equity"]
    assert set(table.column("symbol").to_pylist()) == {"AAPL", "MSFT"}
    assert doc["metrics"]["n_bars"] == table.num_rows / 2


def test_snippet_on_imported_csv_with_params(tmp_path):
    bars = generate_bars(300, seed=5)
    dates = np.datetime_as_string(bars["ts"].astype("datetime64[ns]"), unit="D")
    lines = ["Date,Open,High,Low,Close,Volume"] + [
        f"{d},{o},{h},{lo},{c},{v}"
        for d, o, h, lo, c, v in zip(dates, bars["open"], bars["high"], bars["low"],
                                     bars["close"], bars["volume"], strict=True)
    ]
    csv = tmp_path / "aapl.csv"
    csv.write_text("\n".join(lines) + "\n")
    catalog = tmp_path / "cat"
    got = invoke("data", "import", str(csv), "--symbol", "AAPL", "--interval", "1d",
                 "--data", str(catalog))
    assert got.exit_code == 0, got.output
    strat = tmp_path / "sma.py"
    strat.write_text(SNIPPET)
    out = tmp_path / "out"
    got = invoke("run", "--mode", "backtest", str(strat), "--data", str(catalog),
                 "-p", "fast=5", "-p", "slow=20", "--cost-bps", "5", "--out", str(out))
    assert got.exit_code == 0, got.output
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["params"] == {"fast": 5, "slow": 20}
    assert doc["metrics"]["n_bars"] == 300


@pytest.mark.parametrize(
    ("setup", "args", "message"),
    [
        ("syntax", [], "syntax error in"),
        ("ok", ["-p", "fats=3"], "has no parameter 'fats'"),
        ("ok", ["-p", "fast"], "-p expects name=value"),
        ("ok", ["--symbols", "ZZZ"], "unknown symbol 'ZZZ'"),
        ("ok", ["--start", "2100-01-01"], "no bars for"),
        ("ok", ["--start", "yesterday"], "start:"),
        ("ok", ["--mode", "paper"], "--mode must be 'backtest' or 'live'"),
        ("two", [], "several Strategy classes"),
    ],
)
def test_bad_input_gives_one_line_and_nonzero_exit(demo_data, tmp_path, setup, args, message):
    src = {
        "ok": SNIPPET,
        "syntax": SNIPPET.replace("def signal(self, bars):", "def signal(self, bars)"),
        "two": SNIPPET + "\nclass Other(SmaCross):\n    pass\n",
    }[setup]
    strat = tmp_path / "s.py"
    strat.write_text(src)
    got = invoke("run", str(strat), "--data", str(demo_data), "--out", str(tmp_path / "o"), *args)
    assert got.exit_code != 0
    assert message in got.output
    assert "Traceback" not in got.output
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_unknown_symbol_lists_available(demo_data, tmp_path):
    strat = tmp_path / "s.py"
    strat.write_text(SNIPPET)
    got = invoke("run", str(strat), "--data", str(demo_data), "--symbols", "ZZZ")
    assert "AAPL" in got.output and "MSFT" in got.output
