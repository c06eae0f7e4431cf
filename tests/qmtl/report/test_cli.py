"""`qmtl run --report`, `qmtl report` and `qmtl compare` as a user drives them, on a real
run of the demo data, and their errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from qmtl.cli import app

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
runner = CliRunner()
SRC = re.compile(r"<(script|link|img|iframe|source|embed)\b[^>]*\b(src|href)\s*=\s*[\"']?"
                 r"\s*(https?:)?//", re.I)


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """Two backtests of the demo data (fast=10 with --report, fast=20 without)."""
    root = tmp_path_factory.mktemp("runs")
    got = invoke("data", "demo", "--data", root / "data", "--bars", "600")
    assert got.exit_code == 0, got.output
    got = invoke("run", EXAMPLES / "sma_cross.py", "--data", root / "data", "--out",
                 root / "a", "--report")
    assert got.exit_code == 0, got.output
    assert f"wrote {root / 'a' / 'report.html'}" in got.output.replace("\n", "")
    got = invoke("run", EXAMPLES / "sma_cross.py", "--data", root / "data", "--out",
                 root / "b", "-p", "fast=20")
    assert got.exit_code == 0, got.output
    return root


def test_run_report_writes_a_self_contained_page(runs):
    page = (runs / "a" / "report.html").read_text()
    assert page.count("\nqmtlDraw(") == 10
    assert SRC.search(page) is None  # nothing loads from anywhere
    doc = json.loads((runs / "a" / "metrics.json").read_text())
    for name, value in doc["metrics"].items():
        assert f'data-metric="{name}" data-value="{json.dumps(value)}"' in page
    assert doc["data"]["fingerprint"] in page
    assert "buy &amp; hold, equal weight" in page


def test_report_with_a_symbol_benchmark_and_out(runs, tmp_path):
    out = tmp_path / "deep" / "sheet.html"
    got = invoke("report", runs / "a", "--benchmark", "MSFT", "--out", out)
    assert got.exit_code == 0, got.output
    assert out.is_file() and "buy &amp; hold MSFT" in out.read_text()


def test_report_errors_say_what_is_wrong(runs, tmp_path):
    got = invoke("report", tmp_path / "nowhere")
    assert got.exit_code == 1 and "is not a run folder: no such folder" in got.output
    got = invoke("report", runs)
    assert got.exit_code == 1 and "has no metrics.json" in got.output
    got = invoke("report", runs / "a", "--benchmark", "SPY")
    assert got.exit_code == 1
    assert "--benchmark SPY: the run traded ['AAPL', 'MSFT'], not SPY" in got.output
    broken = tmp_path / "broken"
    shutil.copytree(runs / "b", broken)
    (broken / "metrics.json").write_text("{")
    got = invoke("report", broken)
    assert got.exit_code == 1 and "metrics.json is not valid JSON" in got.output
    assert not (broken / "report.html").exists()
    (broken / "metrics.json").write_text((runs / "b" / "metrics.json").read_text())
    (broken / "bars.parquet").write_text("not parquet")
    got = invoke("report", broken)
    assert got.exit_code == 1 and "bars.parquet cannot be read" in got.output


def test_an_old_run_folder_without_prices_still_reports(runs, tmp_path):
    old = tmp_path / "old"
    shutil.copytree(runs / "b", old)
    table = pq.read_table(old / "bars.parquet")
    pq.write_table(table.drop_columns(["close"]), old / "bars.parquet")
    got = invoke("report", old)
    assert got.exit_code == 0, got.output
    assert "no benchmark: this run folder has no prices" in (old / "report.html").read_text()
    got = invoke("report", old, "--benchmark", "AAPL")
    assert got.exit_code == 1 and "has no prices (bars.parquet has no close column" in got.output


def test_compare_prints_metrics_side_by_side_and_writes_html(runs, tmp_path):
    out = tmp_path / "cmp.html"
    got = invoke("compare", runs / "a", runs / "b", "--out", out)
    assert got.exit_code == 0, got.output
    a = json.loads((runs / "a" / "metrics.json").read_text())["metrics"]
    b = json.loads((runs / "b" / "metrics.json").read_text())["metrics"]
    line = next(x for x in got.output.splitlines() if "sharpe" in x)
    assert f"{a['sharpe']:.3f}" in line and f"{b['sharpe']:.3f}" in line
    page = out.read_text()
    assert page.count("\nqmtlDraw(") == 2 and SRC.search(page) is None
    assert "params.fast" in page  # the setting in which they differ


def test_compare_errors(runs, tmp_path):
    got = invoke("compare", runs / "a", tmp_path)
    assert got.exit_code == 1 and "has no metrics.json" in got.output
    got = invoke("compare")
    assert got.exit_code != 0


def test_live_mode_refuses_report(tmp_path):
    got = invoke("run", EXAMPLES / "sma_cross.py", "--mode", "live", "--report")
    assert got.exit_code == 1 and "--report is for backtests" in got.output
