"""The sweep benchmark's harness runs and its checks pass (no timing asserted): qmtl's
variants against their own runs, every vectorbt variant, backtesting.py's optimized grid,
2 workers and 2 processes bit for bit, and the memory runs in fresh processes."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests import procs

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_sweep_bench_checks_every_peer(tmp_path: Path) -> None:
    out = tmp_path / "sweep.json"
    proc = procs.run(
        [sys.executable, str(ROOT / "bench" / "sweep.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["variants"] == 6 and doc["quick"] is True
    assert set(doc["seconds"]) == {
        "one_variant", "sweep", "vectorbt_grid", "backtesting_optimize_subset",
        "sweep_2_workers", "sweep_catalog_1_process", "sweep_2_processes",
        "flow_catalog_1_process", "flow_2_processes"}
    assert [m["variants"] for m in doc["memory"]] == [1, 6]
    assert all(m["peak_rss_mb"] >= m["rss_before_sweep_mb"] for m in doc["memory"])
    assert doc["dedup"] > 1
    assert len(doc["targets"]) == 3
