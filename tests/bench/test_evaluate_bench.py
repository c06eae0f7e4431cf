"""The evaluator's benchmark harness runs (no timing asserted): every alpha's metrics in
the one flow equal its own backtest's before a time is reported."""

from __future__ import annotations

import json

from bench.evaluate import alphas, main


def test_quick_run_checks_the_flow_against_each_backtest(tmp_path):
    doc = main(["--quick", "--out", str(tmp_path / "e.json")])
    assert doc["max_metric_difference"] <= 1e-12
    assert doc["dedup"] > 1.0  # the alphas share their close
    assert json.loads((tmp_path / "e.json").read_text())["size"]["alphas"] == 8


def test_the_alphas_are_distinct():
    graphs = {a.target().id for a in alphas(10, ["A"])}
    assert len(graphs) == 10
