"""Tear sheets and comparisons of backtests: ``qmtl report``, ``qmtl compare``,
``BacktestResult.plot()`` and ``BacktestResult.report()``.

One concern per module: :mod:`~qmtl.report.load` (a run folder or a result in memory),
:mod:`~qmtl.report.downsample` (min/max per bucket, pure numpy),
:mod:`~qmtl.report.stats` and :mod:`~qmtl.report.trades` (the sheet's statistics, pure),
:mod:`~qmtl.report.charts` (plotly figures), :mod:`~qmtl.report.html` (the page template,
escaping, plotly.js embedded), :mod:`~qmtl.report.sheet` (the tear sheet) and
:mod:`~qmtl.report.compare` (runs side by side). See ``docs/reports.md``.

Its names load on first use (:pep:`562`), so ``BacktestResult`` can refer to this package
without loading plotly for a backtest that never draws.

>>> import tempfile
>>> from qmtl.report import load_run
>>> load_run(tempfile.mkdtemp())
Traceback (most recent call last):
...
qmtl.report.load.ReportError: ... is not a run folder: it has no metrics.json ...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qmtl.report.compare import compare_page, compare_table, write_compare
    from qmtl.report.load import ReportError, Run, from_result, load_run
    from qmtl.report.sheet import plot, tear_sheet, write_report

_LAZY = {
    "compare_page": "qmtl.report.compare",
    "compare_table": "qmtl.report.compare",
    "write_compare": "qmtl.report.compare",
    "ReportError": "qmtl.report.load",
    "Run": "qmtl.report.load",
    "from_result": "qmtl.report.load",
    "load_run": "qmtl.report.load",
    "plot": "qmtl.report.sheet",
    "tear_sheet": "qmtl.report.sheet",
    "write_report": "qmtl.report.sheet",
}
"""Public names loaded on first use, and the module of each."""


def __getattr__(name: str) -> object:
    """Load a name of :data:`_LAZY` from its module on first use.

    >>> __getattr__("load_run").__name__
    'load_run'
    """
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'qmtl.report' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


__all__ = [
    "ReportError",
    "Run",
    "compare_page",
    "compare_table",
    "from_result",
    "load_run",
    "plot",
    "tear_sheet",
    "write_compare",
    "write_report",
]
