"""The peer benchmark's harness runs and its correctness checks pass (no timing asserted).

Runs ``bench/peers.py --quick`` as a user would: every peer (numpy, vectorbt, backtesting.py,
backtrader, a naive Bytewax port) on small data, the 1-vs-2 worker and 1-vs-2 process runs,
and the memory runs in fresh processes. Each system's returns must equal qmtl's before the
harness reports a speed, so a peer or engine change that breaks agreement fails here.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from tests import procs

ROOT = Path(__file__).resolve().parents[2]
SYSTEMS = {"qmtl", "numpy (floor)", "vectorbt", "qmtl, 1 bar per batch", "backtesting.py",
           "backtrader", "bytewax per-bar"}


@pytest.mark.slow
def test_quick_run_checks_every_peer(tmp_path):
    out = tmp_path / "peers.json"
    proc = procs.run(
        [sys.executable, str(ROOT / "bench" / "peers.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    rows = doc["rows"]
    strategies = {"sma_cross", "rsi_reversion", "breakout"}
    first = rows[0]["case"]
    assert {r["system"] for r in rows if r["case"] == first} == SYSTEMS
    assert {r["strategy"] for r in rows} == strategies
    for r in rows:
        assert r["check"] == "reference" or r["check"].startswith("returns"), r
        assert r["bars_per_s"] > 0
    # scaling: both multi-worker setups reproduced the single-worker returns bit for bit
    setups = {r["setup"]: r["check"] for r in doc["scaling"]}
    assert sum(c == "returns bit-identical" for c in setups.values()) == 2, setups
    # memory: one streaming replay per history length, each in its own process
    stream = [r for r in doc["memory"] if r["mode"] == "stream"]
    assert [r["bars_per_symbol"] for r in stream] == [1_000, 4_000]
    assert all(r["peak_rss_mb"] > 0 for r in stream)
    assert len(doc["targets"]) == 12
    assert "qmtl" in proc.stdout and "targets" in proc.stdout
