"""The tear sheet of one run: its charts, its tables and the page that holds them.

Charts: equity against a benchmark (buy and hold of the universe in equal parts, or of one
symbol; on a linear or a log scale), drawdown (underwater), monthly returns, yearly returns,
rolling Sharpe and rolling volatility, the distribution of bar returns, exposure (long,
short, gross and net for a book with shorts), turnover per month, and each symbol's
contribution. Tables: the metrics exactly as ``metrics.json`` holds them (read, never
recomputed), every setting of the run (parameters, costs, period, data fingerprint and
per-symbol coverage), the worst drawdowns, alpha and beta against the benchmark, and the
round trips.

>>> import numpy as np
>>> from qmtl.report.stats import Rows
>>> rows = Rows(np.arange(1, 4) * 86_400 * 10**9, np.zeros(3, int), ["A"],
...             np.ones(3), np.array([0.0, 0.1, -0.05]), np.array([1.0, 1.1, 1.045]),
...             np.array([10.0, 11.0, 10.45]))
>>> run = Run("demo", {"metrics": {"sharpe": 1.5}, "interval": "1d"}, rows)
>>> [title for title, _ in figures(run)][:2]
['Equity', 'Drawdown']
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from qmtl.cli.common import format_metric
from qmtl.core.times import format_ts
from qmtl.report import charts
from qmtl.report.downsample import POINTS
from qmtl.report.html import chart_div, escape, page, section, table
from qmtl.report.load import Run
from qmtl.report.stats import (
    NS_PER_DAY,
    alpha_beta,
    bar_returns,
    default_window,
    drawdown,
    histogram,
    monthly_table,
    period_returns,
    period_sums,
    rolling_sharpe_vol,
    worst_drawdowns,
)
from qmtl.report.trades import round_trips

MAX_TRADES = 100
"""Round trips listed on the page (the latest; ``Run.trades()`` has them all)."""

WIDE, NARROW = 3_000, 2_000
"""Points per line of the full-width charts (equity, drawdown) and of the smaller ones:
1,500 and 1,000 buckets of min and max, at least one per pixel column of their plot areas
(at most about 1,330 and 1,030 px wide), so each column is drawn from its bars' true low and
high: the chart looks as if every bar were drawn."""

BUDGET = 2_500_000
"""Bytes a tear sheet stays under, whatever the run's length: plotly.js packed (1.96 MB),
the lines (16 bytes a point, at most 9,000 + 6,000 points) and tables of bounded length."""

MAX_SYMBOLS = 25
"""Symbols named in the header and in the per-symbol data table (metrics.json has all)."""


def benchmark_of(run: Run, symbol: str | None = None) -> tuple[str, np.ndarray] | None:
    """``(label, equity on the run's timeline)`` of the benchmark, or None when the run
    carries no prices (see :meth:`~qmtl.report.load.Run.check_benchmark`).

    >>> import numpy as np
    >>> from qmtl.report.stats import Rows
    >>> run = Run("r", {}, Rows(np.array([1, 2]), np.zeros(2, int), ["A"], np.ones(2),
    ...                         np.zeros(2), np.ones(2), np.array([2.0, 3.0])))
    >>> label, eq = benchmark_of(run)
    >>> label, eq.tolist()
    ('buy & hold A', [1.0, 1.5])
    """
    run.check_benchmark(symbol)
    if not run.has_prices:
        return None
    if symbol is None and len(run.rows.symbols) > 1:
        return "buy & hold, equal weight", run.rows.benchmark()
    name = symbol or run.rows.symbols[0]
    return f"buy & hold {name}", run.rows.benchmark(name)


def strategy_name(run: Run) -> str:
    """The strategy's name (``metrics.json``'s ``strategy``; the run's name without one).

    >>> strategy_name(Run("runs/x", {"strategy": "SmaCross"}, None))
    'SmaCross'
    """
    return str(run.doc.get("strategy") or run.name)


def exposure_chart(run: Run, points: int) -> go.Figure:
    """Gross exposure after each bar; for a book with shorts, long, short (negative), gross
    and net exposure.

    >>> import numpy as np
    >>> from qmtl.report.stats import Rows
    >>> rows = Rows(np.array([1, 1]), np.array([0, 1]), ["A", "B"], np.array([0.5, -0.5]),
    ...             np.zeros(2), np.ones(2))
    >>> [t.name for t in exposure_chart(Run("r", {}, rows), 100).data]
    ['long', 'short', 'gross', 'net']
    """
    rows = run.rows
    if not rows.has_shorts:
        return charts.line_chart("Gross exposure", rows.timeline, {"gross": rows.gross},
                                 ".0%", fill=True, points=points, step=True)
    return charts.line_chart(
        "Exposure: long, short, gross and net", rows.timeline,
        {"long": rows.long, "short": rows.short, "gross": rows.gross, "net": rows.net},
        ".0%", points=points, step=True)


def figures(run: Run, benchmark: str | None = None,
            points: int = WIDE) -> list[tuple[str, go.Figure]]:
    """The tear sheet's charts, ``(title, figure)`` in page order; a line has at most
    ``points`` points on the full-width charts, two thirds of that on the others."""
    narrow = max(4, points * NARROW // WIDE)
    rows = run.rows
    ts, equity, returns = rows.timeline, rows.curve, rows.returns
    bench = benchmark_of(run, benchmark)
    name = strategy_name(run)
    eq_lines = {name: equity}
    if bench is not None:
        eq_lines[bench[0]] = bench[1]
    window = default_window(len(returns), run.periods_per_year)
    sharpe, vol = rolling_sharpe_vol(returns, window, run.periods_per_year)
    years, grid = monthly_table(ts, equity)
    year_starts, yearly = period_returns(ts, equity, "Y")
    by_year = {name: yearly}
    if bench is not None:
        by_year[bench[0]] = period_returns(ts, bench[1], "Y")[1]
    months, turnover = period_sums(ts, rows.turnover, "M")
    edges, counts = histogram(returns)
    return [
        ("Equity", charts.line_chart("Equity (growth of 1)", ts, eq_lines, points=points,
                                     log_toggle=True)),
        ("Drawdown", charts.line_chart("Drawdown (underwater)", ts,
                                       {"drawdown": drawdown(equity)}, ".1%", fill=True,
                                       points=points)),
        ("Monthly returns", charts.monthly_heatmap(years, grid)),
        ("Yearly returns", charts.bar_chart("Yearly returns",
                                            [str(y)[:4] for y in year_starts], by_year)),
        ("Rolling Sharpe", charts.line_chart(f"Rolling Sharpe ({window} bars)", ts,
                                             {"Sharpe": sharpe}, ".2f", points=narrow)),
        ("Rolling volatility", charts.line_chart(
            f"Rolling volatility, annualized ({window} bars)", ts, {"volatility": vol},
            ".1%", points=narrow)),
        ("Distribution", charts.histogram_chart(edges, counts)),
        ("Exposure", exposure_chart(run, narrow)),
        ("Turnover", charts.bar_chart("Turnover per month", months, {"turnover": turnover},
                                      ".2f")),
        ("Contribution", charts.contributions_chart(rows.contributions())),
    ]


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(value, dict):
        out: list[tuple[str, str]] = []
        for key, item in value.items():
            out.extend(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return [(prefix, value if isinstance(value, str) else json.dumps(value))]


def metrics_section(run: Run) -> str:
    """The metrics of ``metrics.json``, each row carrying its exact value (``data-value``,
    as JSON) beside the formatted one."""
    raw = run.doc.get("metrics") or {}
    rows = [[name, format_metric(name, math.nan if v is None else float(v))]
            for name, v in raw.items()]
    attrs = [{"metric": name, "value": json.dumps(v)} for name, v in raw.items()]
    return section("Metrics", table(["metric", "value"], rows, [False, True], attrs,
                                    cls="metrics"))


def settings_section(run: Run) -> str:
    """Every setting the run recorded: parameters, costs, period, data fingerprint, and
    each symbol's coverage."""
    doc = {k: v for k, v in run.doc.items() if k != "metrics"}
    data = dict(doc.get("data") or {})
    per_symbol = data.pop("symbols", None) or {}
    doc["data"] = data
    rows = [[k, v] for k, v in _flatten(doc)]
    content = table(["setting", "value"], rows, cls="settings")
    if per_symbol:
        keys = sorted({k for v in per_symbol.values() for k in v})
        shown = list(per_symbol.items())[:MAX_SYMBOLS]
        cov = [[s, *(json.dumps(v.get(k)) if not isinstance(v.get(k), str) else v.get(k)
                    for k in keys)] for s, v in shown]
        more = (f" (the first {len(shown)} of {len(per_symbol)}; metrics.json has every one)"
                if len(per_symbol) > len(shown) else "")
        content += (f"<details><summary>data seen, per symbol{escape(more)}</summary>"
                    + table(["symbol", *keys], cov) + "</details>")
    return section("Run settings", f'<div class="scroll">{content}</div>')


def trades_section(run: Run, limit: int = MAX_TRADES) -> str:
    """The round trips (see :mod:`qmtl.report.trades`), the latest ``limit`` of them.

    >>> import numpy as np
    >>> from qmtl.report.stats import Rows
    >>> rows = Rows(np.array([0, 1, 2]) * 86_400 * 10**9, np.zeros(3, int), ["A"],
    ...             np.array([1.0, 0.0, 0.0]), np.array([0.0, 0.1, 0.0]),
    ...             np.array([1.0, 1.1, 1.1]), np.array([10.0, 11.0, 11.0]))
    >>> "<td>long</td><td>1970-01-01" in trades_section(Run("r", {}, rows))
    True
    """
    t = round_trips(run.rows)
    n = len(t["entry"])
    start = max(0, n - limit)
    rows = [
        [t["symbol"][i], t["side"][i], format_ts(int(t["entry"][i])),
         "open" if t["open"][i] else format_ts(int(t["exit"][i])), int(t["bars"][i]),
         "-" if not np.isfinite(t["return"][i]) else f"{t['return'][i] * 100:.2f}%",
         f"{t['pnl'][i] * 100:.3f}%"]
        for i in range(start, n)
    ]
    note = ""
    if start:
        note = f"the latest {limit} of {n} round trips; Run.trades() lists them all"
    content = '<div class="scroll">' + table(
        ["symbol", "side", "entry (UTC)", "exit (UTC)", "bars held", "return",
         "P&L (of capital)"],
        rows, [False, False, False, False, True, True, True], cls="trades") + "</div>"
    return section(f"Round trips ({n})", content, note)


def drawdowns_section(run: Run, top: int = 5) -> str:
    """The ``top`` worst drawdowns (see :func:`~qmtl.report.stats.worst_drawdowns`): peak,
    trough, recovery, depth and length in bars and calendar days.

    >>> import numpy as np
    >>> from qmtl.report.stats import Rows
    >>> rows = Rows(np.arange(3) * 86_400 * 10**9, np.zeros(3, int), ["A"], np.ones(3),
    ...             np.zeros(3), np.array([1.0, 0.9, 1.0]))
    >>> "<td>1970-01-01" in drawdowns_section(Run("r", {}, rows))
    True
    """
    ts = run.rows.timeline
    d = worst_drawdowns(run.rows.curve, top)
    rows = []
    for i in range(len(d["start"])):
        start, trough, rec = int(d["start"][i]), int(d["trough"][i]), int(d["recovery"][i])
        until = rec if rec >= 0 else len(ts) - 1
        days = (int(ts[until]) - int(ts[start])) / NS_PER_DAY
        rows.append([i + 1, format_ts(int(ts[start])), format_ts(int(ts[trough])),
                     format_ts(int(ts[rec])) if rec >= 0 else "not recovered",
                     f"{d['depth'][i] * 100:.2f}%", int(d["length"][i]), f"{days:.0f}"])
    content = table(["#", "peak (UTC)", "trough (UTC)", "recovery (UTC)", "depth",
                     "bars", "days"], rows, [True, False, False, False, True, True, True],
                    cls="drawdowns") if rows else "<p>the run was never under water</p>"
    return section(f"Worst {top} drawdowns", f'<div class="scroll">{content}</div>')


def benchmark_section(run: Run, bench: tuple[str, np.ndarray] | None) -> str:
    """Beta, annualized alpha, correlation and R² of the strategy's bar returns against the
    benchmark's (see :func:`~qmtl.report.stats.alpha_beta`), each row carrying its exact
    value in ``data-value``; a note when the run has no benchmark.

    >>> import numpy as np
    >>> from qmtl.report.stats import Rows
    >>> rows = Rows(np.arange(3), np.zeros(3, int), ["A"], np.ones(3), np.zeros(3),
    ...             np.array([1.0, 1.1, 1.0]), np.array([10.0, 11.0, 10.0]))
    >>> 'data-stat="beta" data-value="1.0"' in benchmark_section(Run("r", {}, rows),
    ...                                                         ("b", np.array([1, 1.1, 1])))
    True
    """
    title = "Against the benchmark"
    if bench is None:
        return section(title, "", "no benchmark: this run folder has no prices")
    ab = alpha_beta(run.rows.returns, bar_returns(bench[1]), run.periods_per_year)
    total = float(bench[1][-1] - 1.0) if len(bench[1]) else math.nan
    shown = [("beta", ab["beta"], f"{ab['beta']:.3f}"),
             ("alpha", ab["alpha"], f"{ab['alpha'] * 100:.2f}%"),
             ("correlation", ab["correlation"], f"{ab['correlation']:.3f}"),
             ("r2", ab["r2"], f"{ab['r2']:.3f}"),
             ("benchmark_total_return", total, f"{total * 100:.2f}%")]
    labels = {"beta": "beta", "alpha": "alpha (annualized: per-bar alpha × periods a year)",
              "correlation": "correlation", "r2": "R²",
              "benchmark_total_return": "benchmark total return"}
    rows = [[labels[k], text if math.isfinite(v) else "-"] for k, v, text in shown]
    attrs = [{"stat": k, "value": json.dumps(v if math.isfinite(v) else None)}
             for k, v, _ in shown]
    content = (f"<p>{escape(bench[0])}: ordinary least squares of the strategy's bar "
               "returns on the benchmark's</p>"
               + table(["statistic", "value"], rows, [False, True], attrs, cls="benchmark"))
    return section(title, content)


def header(run: Run, bench_label: str | None) -> str:
    """The page's title block: strategy, universe, interval, period, fingerprint."""
    doc = run.doc
    symbols = [str(s) for s in doc.get("symbols") or run.rows.symbols]
    if len(symbols) > MAX_SYMBOLS:
        symbols = [*symbols[:MAX_SYMBOLS], f"and {len(symbols) - MAX_SYMBOLS} more"]
    fingerprint = str((doc.get("data") or {}).get("fingerprint", "-"))[:16]
    period = f"{doc.get('start_utc', '?')} → {doc.get('end_utc', '?')}"
    return (
        f"<header><h1>{escape(doc.get('strategy', run.name))}</h1>"
        f"<p>{escape(', '.join(symbols))} · {escape(doc.get('interval', '?'))} · "
        f"{escape(period)}</p><p>run {escape(run.label)} · data fingerprint "
        f"{escape(fingerprint)} · benchmark {escape(bench_label or 'none')}</p></header>"
    )


def tear_sheet(run: Run, benchmark: str | None = None, points: int = WIDE) -> str:
    """The tear sheet of ``run`` as one self-contained HTML page (see the module
    docstring); ``benchmark`` a symbol of the run (default: the universe in equal parts).
    """
    figs = figures(run, benchmark, points)
    bench = benchmark_of(run, benchmark)
    note = "" if bench is not None else (
        "no benchmark: this run folder has no prices (bars.parquet has no close column; it "
        "was written by an older qmtl or a live run)")
    charts_html = [f"<section>{chart_div(i)}</section>" for i in range(len(figs))]
    top = section("", chart_div(0), note) + section("", chart_div(1))
    grid = '<div class="grid">' + "".join(charts_html[2:]) + "</div>"
    body = [top, '<div class="grid">' + metrics_section(run) + settings_section(run) + "</div>",
            '<div class="grid">' + drawdowns_section(run) + benchmark_section(run, bench)
            + "</div>", grid, trades_section(run)]
    return page(f"{run.doc.get('strategy', run.name)} · tear sheet", body,
                [fig for _, fig in figs], header(run, bench[0] if bench else None))


def write_html(text: str, out: str | Path) -> Path:
    """Write ``text`` to ``out`` whole or not at all (a temporary file, then renamed).

    >>> import tempfile
    >>> write_html("<p>", Path(tempfile.mkdtemp()) / "a.html").read_text()
    '<p>'
    """
    path = Path(out)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_report(run: Run, out: str | Path, benchmark: str | None = None) -> Path:
    """Write the tear sheet of ``run`` to the HTML file ``out``; return its path."""
    return write_html(tear_sheet(run, benchmark), out)


def plot(run: Run, benchmark: str | None = None, points: int = POINTS) -> go.Figure:
    """Equity (with the benchmark, when the run has prices) above its drawdown: one plotly
    figure (it renders in a notebook)."""
    rows = run.rows
    ts = charts.to_ms(rows.timeline)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3],
                        vertical_spacing=0.04)
    lines = [(strategy_name(run), rows.curve)]
    bench = benchmark_of(run, benchmark)
    if bench is not None:
        lines.append(bench)
    for i, (name, y) in enumerate(lines):
        line = charts.lines_chart("", [(name, rows.timeline, y)], points=points).data[0]
        line.line.color = charts.COLORS[i]
        fig.add_trace(line, row=1, col=1)
    dd = charts.lines_chart("", [("drawdown", rows.timeline, drawdown(rows.curve))],
                            fill=True, points=points).data[0]
    dd.line.color = charts.COLORS[2]
    fig.add_trace(dd, row=2, col=1)
    fig.update_layout(title=f"{run.doc.get('strategy', run.name)}: equity and drawdown",
                      height=520, hovermode="x unified", template="plotly_white")
    fig.update_xaxes(type="date")
    fig.update_yaxes(tickformat=".0%", row=2, col=1)
    del ts
    return fig
