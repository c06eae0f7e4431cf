"""Tear sheets and comparisons of backtests: ``qmtl report``, ``qmtl compare``,
``BacktestResult.plot()`` and ``BacktestResult.report()``.

One concern per module: :mod:`~qmtl.report.load` (a run folder or a result in memory),
:mod:`~qmtl.report.downsample` (min/max per bucket, pure numpy),
:mod:`~qmtl.report.stats` and :mod:`~qmtl.report.trades` (the sheet's statistics, pure),
:mod:`~qmtl.report.charts` (plotly figures), :mod:`~qmtl.report.html` (the page template,
escaping, plotly.js embedded), :mod:`~qmtl.report.sheet` (the tear sheet) and
:mod:`~qmtl.report.compare` (runs side by side). See ``docs/reports.md``.

>>> import tempfile
>>> load_run(tempfile.mkdtemp())
Traceback (most recent call last):
...
qmtl.report.load.ReportError: ... is not a run folder: it has no metrics.json ...
"""

from __future__ import annotations

from qmtl.report.compare import compare_page, compare_table, write_compare
from qmtl.report.load import ReportError, Run, from_result, load_run
from qmtl.report.sheet import plot, tear_sheet, write_report

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
