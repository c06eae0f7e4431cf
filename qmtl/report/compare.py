"""Runs side by side: their metrics (from each ``metrics.json``, as written), the settings in
which they differ, and their equity and drawdown curves overlaid; in the terminal (a rich
table) and as one HTML page.

>>> import numpy as np
>>> from qmtl.report.stats import Rows
>>> def run(name, sharpe):
...     rows = Rows(np.array([1, 2]), np.zeros(2, int), ["A"], np.ones(2), np.zeros(2),
...                 np.ones(2))
...     return Run(name, {"metrics": {"sharpe": sharpe}, "params": {"n": sharpe}}, rows)
>>> names(metric_rows([run("a", 1.0), run("a", 2.0)])[0])
['a', 'a (2)']
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table

from qmtl.cli.common import format_metric
from qmtl.report import charts
from qmtl.report.html import chart_div, escape, page, section, table
from qmtl.report.load import ReportError, Run
from qmtl.report.sheet import WIDE, _flatten, write_html
from qmtl.report.stats import drawdown


def names(runs: Sequence[Run]) -> list[str]:
    """Each run's name, numbered where two runs share one.

    >>> names([])
    []
    """
    out: list[str] = []
    for run in runs:
        name, n = run.name, 2
        while name in out:
            name, n = f"{run.name} ({n})", n + 1
        out.append(name)
    return out


def metric_rows(runs: Sequence[Run]) -> tuple[Sequence[Run], list[tuple[str, list[float]]]]:
    """``(runs, [(metric, value per run)])``: every metric any run has, in the first run's
    order then the others'; NaN where a run lacks one.

    >>> metric_rows([])
    Traceback (most recent call last):
    ...
    qmtl.report.load.ReportError: compare needs at least one run
    """
    if not runs:
        raise ReportError("compare needs at least one run")
    order: list[str] = []
    for run in runs:
        order.extend(k for k in run.metrics if k not in order)
    return runs, [(k, [run.metrics.get(k, math.nan) for run in runs]) for k in order]


def differing_settings(runs: Sequence[Run]) -> list[tuple[str, list[str]]]:
    """The settings (parameters, costs, period, data fingerprint, ...) whose values are not
    the same in every run, as ``(key, value per run)``; all of them for a single run."""
    flat = []
    for run in runs:
        doc = {k: v for k, v in run.doc.items() if k not in ("metrics", "data")}
        doc["fingerprint"] = (run.doc.get("data") or {}).get("fingerprint")
        flat.append(dict(_flatten(doc)))
    keys: list[str] = []
    for f in flat:
        keys.extend(k for k in f if k not in keys)
    out = []
    for key in keys:
        values = [f.get(key, "-") for f in flat]
        if len(runs) == 1 or len(set(values)) > 1:
            out.append((key, values))
    return out


def compare_table(runs: Sequence[Run]) -> Table:
    """The metrics of ``runs`` side by side, as a rich table.

    >>> import numpy as np
    >>> from qmtl.report.stats import Rows
    >>> r = Run("a", {"metrics": {"sharpe": 1.0}}, Rows(np.array([1]), np.zeros(1, int),
    ...         ["A"], np.ones(1), np.zeros(1), np.ones(1)))
    >>> compare_table([r, r]).row_count
    1
    """
    _, rows = metric_rows(runs)
    t = Table(title="runs compared", show_header=True, header_style="bold")
    t.add_column("metric")
    for name in names(runs):
        t.add_column(name, justify="right")
    for metric, values in rows:
        t.add_row(metric, *(format_metric(metric, v) for v in values))
    return t


def compare_page(runs: Sequence[Run], points: int = WIDE) -> str:
    """The comparison as one self-contained HTML page: the metrics (each cell carries its
    exact value from ``metrics.json`` in ``data-value``), the differing settings, and the
    equity and drawdown curves overlaid."""
    labels = names(runs)
    _, rows = metric_rows(runs)
    cells = [[m, *(format_metric(m, v) for v in vals)] for m, vals in rows]
    raw = [[(run.doc.get("metrics") or {}).get(m) for run in runs] for m, _ in rows]
    attrs = [{"metric": m, "values": json.dumps(r)} for (m, _), r in zip(rows, raw, strict=True)]
    numeric = [False, *([True] * len(runs))]
    metrics_html = section("Metrics", table(["metric", *labels], cells, numeric, attrs,
                                            cls="metrics"))
    diff = differing_settings(runs)
    settings_html = section(
        "Settings that differ", table(["setting", *labels], [[k, *v] for k, v in diff])
        if diff else "<p>none: the runs differ in nothing they recorded</p>")
    equity = charts.lines_chart("Equity (growth of 1)", [
        (label, run.rows.timeline, run.rows.curve) for label, run in zip(labels, runs,
                                                                          strict=True)
    ], points=points)
    under = charts.lines_chart("Drawdown (underwater)", [
        (label, run.rows.timeline, drawdown(run.rows.curve))
        for label, run in zip(labels, runs, strict=True)
    ], ".1%", points=points)
    head = (f"<header><h1>{len(runs)} runs compared</h1><p>"
            f"{escape(' · '.join(r.label for r in runs))}</p></header>")
    body = [section("", chart_div(0)), section("", chart_div(1)),
            '<div class="grid">' + metrics_html + settings_html + "</div>"]
    return page("runs compared", body, [equity, under], head)


def write_compare(runs: Sequence[Run], out: str | Path) -> Path:
    """Write :func:`compare_page` of ``runs`` to the HTML file ``out``; return its path."""
    return write_html(compare_page(runs), out)
