"""The public API of ``import qmtl``: typed entry points, names that stay what they are, and a
light import."""

from __future__ import annotations

import inspect
import sys

import pytest

import qmtl
import qmtl.submit  # the import machinery binds the module as the package's `submit` ...
from qmtl import submit  # ... and this must still be the function
from tests import procs


@pytest.mark.parametrize("name", ["backtest", "submit", "validate"])
def test_entry_points_are_typed_without_any(name):
    signature = inspect.signature(getattr(qmtl, name))
    for param in signature.parameters.values():
        assert param.annotation is not inspect.Parameter.empty, f"{name}({param.name})"
        assert "Any" not in str(param.annotation), f"{name}({param.name}: {param.annotation})"
    assert "Any" not in str(signature.return_annotation)


def test_submit_stays_the_function_after_its_module_is_imported():
    assert inspect.isfunction(submit) and submit.__module__ == "qmtl.submit"
    assert qmtl.Runner.submit is submit and qmtl.Runner.backtest is qmtl.backtest


def test_unknown_names_are_attribute_errors():
    with pytest.raises(AttributeError, match="no attribute 'bakctest'"):
        qmtl.bakctest  # noqa: B018


def test_import_qmtl_loads_neither_the_engine_nor_the_data_layer():
    """``qmtl.core`` runs ``qmtl/__init__`` first, so it must not import the layers that import
    ``qmtl.core``; a lower layer imported first must load without a circular import."""
    code = (
        "import sys, qmtl\n"
        "heavy = [m for m in ('bytewax', 'pyarrow', 'connectors.data.seamless', 'qmtl.runner')"
        " if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "import connectors.data.seamless, dataflows.compiler, world_api.domain.policy\n"
        "from qmtl import backtest, submit\n"
        "print(backtest.__module__, submit.__module__)\n"
    )
    out = procs.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["qmtl.runner", "qmtl.submit"]
    for first in ("connectors.data.seamless", "dataflows.compiler"):
        out = procs.run([sys.executable, "-c", f"import {first}"], capture_output=True,
                             text=True, timeout=300)
        assert out.returncode == 0, out.stderr
