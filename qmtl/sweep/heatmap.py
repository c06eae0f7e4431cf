"""Heatmaps of a sweep's metric over pairs of its parameters, on the sweep's page
(:mod:`qmtl.report.sweep`), which works offline: plotly.js is embedded from the installed
plotly package (no CDN, no network).

A cell shows the best value of the metric over the other parameters (the maximum, or the
minimum for a metric where lower is better); a cell no variant reached is blank.

>>> import numpy as np
>>> from dataflows.sweep_flow import SweepStats, VariantRun
>>> from qmtl.sweep.result import SweepResult
>>> params = [{"fast": f, "slow": s} for f in (5, 10) for s in (20, 50)]
>>> runs = [VariantRun(f"v{i}", np.arange(3), np.zeros(3), np.ones(3), {"sharpe": float(i)})
...         for i in range(4)]
>>> res = SweepResult(["S"] * 4, params, runs, "sharpe", SweepStats())
>>> grid("fast", "slow", res.table, "sharpe")[2].tolist()
[[0.0, 2.0], [1.0, 3.0]]
>>> from qmtl.report.sweep import sweep_page
>>> page = sweep_page(res)
>>> "<script src=" in page, len(page) > 1_000_000   # plotly.js inline, nothing loaded
(False, True)
>>> page.count('<div class="chart" id="chart-')
1
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

if TYPE_CHECKING:
    from qmtl.sweep.result import SweepResult

LOWER_IS_BETTER = frozenset({"volatility", "max_drawdown", "turnover"})
"""Metrics where a smaller value ranks higher (also as ``train_``/``test_`` columns)."""


def lower_is_better(metric: str) -> bool:
    """Whether a smaller ``metric`` is better.

    >>> lower_is_better("test_max_drawdown"), lower_is_better("sharpe")
    (True, False)
    """
    return metric.removeprefix("train_").removeprefix("test_") in LOWER_IS_BETTER


def numeric_params(result: SweepResult) -> list[str]:
    """The swept parameters with two or more numeric values, in grid order.

    >>> import numpy as np
    >>> from dataflows.sweep_flow import SweepStats, VariantRun
    >>> from qmtl.sweep.result import SweepResult
    >>> runs = [VariantRun(f"v{i}", np.arange(2), np.zeros(2), np.ones(2), {"sharpe": 0.0})
    ...         for i in range(2)]
    >>> numeric_params(SweepResult(["S"] * 2, [{"n": 1, "m": "a"}, {"n": 2, "m": "a"}], runs,
    ...                            "sharpe", SweepStats()))
    ['n']
    """
    names: list[str] = []
    for p in result.params:
        names += [n for n in p if n not in names]
    out = []
    for name in names:
        values = {p.get(name) for p in result.params}
        if len(values) >= 2 and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                    for v in values):
            out.append(name)
    return out


def grid(x: str, y: str, table: pa.Table, metric: str) -> tuple[list[Any], list[Any],
                                                                 np.ndarray]:
    """Values of ``x``, of ``y`` and the matrix ``z[y_i][x_j]`` of the best ``metric``."""
    xs = table.column(x).to_pylist()
    ys = table.column(y).to_pylist()
    vs = table.column(metric).to_numpy(zero_copy_only=False).astype(np.float64)
    ux, uy = sorted(set(xs)), sorted(set(ys))
    z = np.full((len(uy), len(ux)), np.nan)
    lower = lower_is_better(metric)
    for xv, yv, v in zip(xs, ys, vs, strict=True):
        i, j = uy.index(yv), ux.index(xv)
        if np.isnan(v):
            continue
        if np.isnan(z[i, j]) or (v < z[i, j] if lower else v > z[i, j]):
            z[i, j] = v
    return ux, uy, z
