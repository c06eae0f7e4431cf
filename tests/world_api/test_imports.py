"""Each layer of world_api imports on its own, first thing in a fresh interpreter (world_api
imports qmtl.core, which runs the qmtl package first: the package must not import anything
that imports world_api back at import time; ``qmtl.submit`` is loaded on first use)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests import procs

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "module",
    ["world_api.domain.policy", "world_api.domain.evaluator", "world_api.client",
     "world_api.service.app", "connectors.live.world_link"],
)
def test_module_imports_first(module):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = procs.run([sys.executable, "-c", f"import {module}"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
