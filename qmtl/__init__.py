"""QMTL: write a quant strategy once; replay it fast and run it live on one Bytewax graph.

>>> from qmtl import Strategy, ind, where
>>> class MeanRevert(Strategy):
...     symbols = ["SPY"]
...     def signal(self, bars):
...         r = ind.rsi(bars.close, 14)
...         return where(r < 30, 1.0, 0.0)
>>> MeanRevert().target().op
'where'

``backtest``, ``submit``, ``validate``, ``sweep``, ``sweep_many``, ``Runner``,
``BacktestResult``, ``SweepResult``, ``alpha``, ``alphas`` and ``from_spec`` are loaded on
first use (:pep:`562`): their modules import the data and engine layers, and those import
``qmtl.core``, which runs this file first, so importing them here would make every import of
a lower layer circular. ``qmtl.submit`` stays the function even after the module of the same
name is imported (Python would otherwise set the package's attribute to the module), and so
do ``qmtl.alpha`` after its package (:mod:`qmtl.alpha`) is and ``qmtl.sweep`` after
:mod:`qmtl.sweep` is.

>>> from qmtl import backtest
>>> backtest.__module__
'qmtl.runner'
>>> import qmtl.submit
>>> from qmtl import submit
>>> submit.__name__, type(submit).__name__
('submit', 'function')
"""

from __future__ import annotations

import importlib
import sys
import types
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from qmtl import cs
from qmtl import indicators as ind
from qmtl.core.expr import Expr, col, latch, lit, where
from qmtl.operator import Operator, check_batch_invariance
from qmtl.strategy import Bars, Strategy, StrategyCodeError, StrategyError

if TYPE_CHECKING:
    from qmtl.alpha.api import alpha, alphas
    from qmtl.alpha.spec import from_spec
    from qmtl.factor.api import factor, factors
    from qmtl.result import BacktestResult
    from qmtl.runner import backtest
    from qmtl.submit import Runner, submit, validate
    from qmtl.sweep import SweepResult, sweep, sweep_many

try:
    __version__ = version("qmtl")
    """The installed qmtl's version, from the package metadata."""
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"

_LAZY = {
    "alpha": "qmtl.alpha.api",
    "alphas": "qmtl.alpha.api",
    "from_spec": "qmtl.alpha.spec",
    "factor": "qmtl.factor.api",
    "factors": "qmtl.factor.api",
    "backtest": "qmtl.runner",
    "BacktestResult": "qmtl.result",
    "Runner": "qmtl.submit",
    "submit": "qmtl.submit",
    "validate": "qmtl.submit",
    "sweep": "qmtl.sweep",
    "sweep_many": "qmtl.sweep",
    "SweepResult": "qmtl.sweep",
}
"""Public names loaded on first use, and the module of each."""


class _Package(types.ModuleType):
    """The ``qmtl`` package module: a submodule import does not shadow a public name of
    :data:`_LAZY` (``import qmtl.submit`` leaves ``qmtl.submit`` the function)."""

    def __setattr__(self, name: str, value: object) -> None:
        if name in _LAZY and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
for _name in _LAZY:  # a subpackage imported above (qmtl.alpha) must not hide its function
    if isinstance(globals().get(_name), types.ModuleType):
        del globals()[_name]


def __getattr__(name: str) -> object:
    """Load a name of :data:`_LAZY` from its module on first use (see the module docstring).

    >>> __getattr__("validate").__name__
    'validate'
    """
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qmtl' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "BacktestResult",
    "Bars",
    "Expr",
    "Operator",
    "Runner",
    "Strategy",
    "StrategyCodeError",
    "StrategyError",
    "SweepResult",
    "alpha",
    "alphas",
    "backtest",
    "check_batch_invariance",
    "col",
    "cs",
    "factor",
    "factors",
    "from_spec",
    "ind",
    "latch",
    "lit",
    "submit",
    "sweep",
    "sweep_many",
    "validate",
    "where",
]
