"""The cross-sectional benchmark's harness runs and its checks pass (no timing asserted):
every system's returns equal qmtl's before a speed is reported, and a broken reference fails
the run."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from bench.common import CheckFailed, check_returns, make_data
from tests import procs

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_checks_every_system(tmp_path):
    out = tmp_path / "crosssection.json"
    proc = procs.run(
        [sys.executable, str(ROOT / "bench" / "crosssection.py"), "--quick", "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=600, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert [r["system"] for r in doc["rows"]] == [
        "qmtl", "numpy (floor)", "pandas (wide, rank(axis=1))", "pandas (long, groupby)"]
    for r in doc["rows"][1:]:
        assert r["check"].startswith("returns 1e-9"), r
    assert set(doc["ratios"]) == {"qmtl_vs_numpy", "qmtl_vs_pandas", "qmtl_vs_pandas_groupby"}


def test_many_alphas_in_one_flow_equal_each_alone():
    from bench.crosssection import momentum, run_alphas

    data = make_data(6, 80)
    together = run_alphas([momentum(3), momentum(5), -momentum(3)], data)
    alone = run_alphas([momentum(5)], data)[0]
    assert np.array_equal(together[1], alone)
    np.testing.assert_allclose(together[2], -together[0], rtol=0, atol=1e-15)


def test_a_wrong_reference_fails_the_check():
    from bench.crosssection import close_matrix, momentum, numpy_momentum, run_alphas

    data = make_data(5, 60)
    want = run_alphas([momentum()], data)[0]
    got = numpy_momentum(close_matrix(data), n=4)  # another look-back: other returns
    with pytest.raises(CheckFailed):
        check_returns("numpy", got, want)
