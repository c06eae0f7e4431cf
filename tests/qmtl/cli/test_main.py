"""`qmtl run --mode backtest` as a user drives it: demo data, CSV import, and bad input."""

from __future__ import annotations

import inspect
import json
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from connectors.data.synthetic import generate_bars
from qmtl import StrategyCodeError
from qmtl.cli import app
from qmtl.cli.run import run as run_command
from qmtl.cli.submit import submit as submit_command
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
    assert table.column_names == ["ts", "symbol", "weight", "return", "equity", "close"]
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


def test_a_typo_in_signal_is_one_line_with_file_line_and_hint(demo_data, tmp_path):
    strat = tmp_path / "s.py"
    strat.write_text(SNIPPET.replace("bars.close.sma(self.fast)", "bars.clsoe.sma(self.fast)"))
    line = SNIPPET.splitlines().index("        return bars.close.sma(self.fast) > "
                                      "bars.close.sma(self.slow)") + 1
    got = invoke("run", str(strat), "--data", str(demo_data), "--out", str(tmp_path / "o"))
    assert got.exit_code == 1
    assert got.output.split() == (
        f"error: SmaCross.signal failed at {strat}:{line} (in signal): AttributeError: 'Bars' "
        "object has no attribute 'clsoe'. Did you mean: 'close'?").split()
    assert "Traceback" not in got.output and "internal error" not in got.output
    assert not (tmp_path / "o").exists()
    debug = invoke("run", str(strat), "--data", str(demo_data), "--debug")
    assert isinstance(debug.exception, StrategyCodeError)  # --debug: the traceback


def test_cost_and_every_setting_are_recorded_with_readable_times(demo_data, tmp_path):
    docs = {}
    for cost in ("0", "25"):
        out = tmp_path / cost
        got = invoke("run", str(EXAMPLES / "sma_cross.py"), "--data", str(demo_data),
                     "--cost-bps", cost, "--start", "2021-01-04", "--end", "2022-06-30",
                     "--batch-size", "333", "--out", str(out))
        assert got.exit_code == 0, got.output
        docs[cost] = json.loads((out / "metrics.json").read_text())
    free, costly = docs["0"], docs["25"]
    assert free["settings"]["cost_bps"] == 0.0 and costly["settings"]["cost_bps"] == 25.0
    assert free["metrics"]["total_return"] != costly["metrics"]["total_return"]
    assert free["data"]["fingerprint"] == costly["data"]["fingerprint"]
    settings = costly["settings"]
    assert settings["batch_size"] == 333 and settings["workers"] == 1
    assert settings["on_bad_bars"] == "raise"
    # the demo's daily bars run every day: 365.0 a year, measured on them
    assert settings["periods_per_year"] == pytest.approx(365.0, rel=1e-12)
    assert settings["annualization"]["source"] == "bars"
    assert settings["max_gross"] == 1.0 and settings["warmup"] > 0
    assert settings["start_utc"] == "2021-01-04T00:00:00Z"
    assert settings["end_utc"] == "2022-06-30T00:00:00Z"
    assert costly["params"] == {"fast": 10, "slow": 50} and costly["interval"] == "1d"
    assert costly["qmtl_version"] == version("qmtl")
    # every time in ns has its ISO-8601 UTC twin, checked against numpy's own formatting
    def iso(ns):
        text = np.datetime_as_string(np.datetime64(ns, "ns"), unit="ns") + "Z"
        return text.replace(".000000000Z", "Z")

    assert costly["start_utc"] == iso(costly["start"]) and costly["end_utc"] == iso(costly["end"])
    assert costly["data"]["as_of_utc"] == iso(costly["data"]["as_of"])
    for summary in costly["data"]["symbols"].values():
        assert summary["first_utc"] == iso(summary["first"])
        assert summary["last_utc"] == iso(summary["last"])


def test_version_is_the_package_metadata():
    got = invoke("--version")
    assert got.exit_code == 0 and got.output == f"qmtl {version('qmtl')}\n"


@pytest.mark.parametrize("command", ["run", "submit"])
def test_help_paragraphs_are_not_broken_where_the_docstring_lines_end(command):
    """`qmtl --help` printed the docstring's line breaks mid-sentence; each paragraph now
    flows: on a wide enough terminal, a paragraph is one line."""
    got = runner.invoke(app, [command, "--help"], env={"COLUMNS": "1000"},
                        terminal_width=1000)
    assert got.exit_code == 0
    shown = {line.strip(" │") for line in got.output.splitlines()}
    doc = {"run": run_command, "submit": submit_command}[command].__doc__
    for paragraph in inspect.cleandoc(doc).split("\n\n"):
        assert " ".join(paragraph.replace("`", "").split()) in shown
    summary = runner.invoke(app, ["--help"], env={"COLUMNS": "1000"},
                        terminal_width=1000)
    first = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    assert any(line.strip(" │").endswith(first) for line in summary.output.splitlines())


def test_a_malformed_origin_is_a_usage_error_not_an_internal_one(demo_data, tmp_path):
    got = invoke("run", str(EXAMPLES / "sma_cross.py"), "--data", str(demo_data),
                 "--origin", "nowhere:x")
    assert got.exit_code == 1 and got.output.startswith("error: ")
    assert "internal error" not in got.output and "nowhere:x" in got.output


def test_an_unwritable_out_folder_names_it(demo_data, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    got = invoke("run", str(EXAMPLES / "sma_cross.py"), "--data", str(demo_data),
                 "--out", str(blocker / "run"))
    assert got.exit_code == 1 and "internal error" not in got.output
    assert str(blocker) in got.output
