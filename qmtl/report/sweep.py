"""The page of a sweep (``heatmap.html``), styled like the tear sheet: what the overfitting
statistics say in plain words, the best variants, the deflated Sharpe ratio, the
probability of backtest overfitting, the walk-forward folds with the parameters each one
chose, and a heatmap of the ranked metric over each pair of numeric parameters with the
value written in each cell.

The reading (:func:`qmtl.report.reading.reading`) weighs the deflated Sharpe ratio and
PBO together (see :mod:`qmtl.report.reading`): a high DSR beside a high PBO is not
"significant".

>>> import numpy as np
>>> from qmtl.sweep.stats import Deflated, Pbo
>>> reading(Deflated(0.963, 0.08, 0.05, 100, 0.001, 500), Pbo(0.72, np.zeros(70))).level
'bad'
"""

from __future__ import annotations

import itertools
import math
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go

from qmtl.cli.common import format_metric
from qmtl.core.times import format_ts
from qmtl.report import charts
from qmtl.report.html import chart_div, escape, page, section, table
from qmtl.report.reading import DSR_LEVEL, PBO_HIGH, PBO_LOW, params_text, reading
from qmtl.sweep.heatmap import grid, lower_is_better, numeric_params

if TYPE_CHECKING:
    from qmtl.sweep.result import SweepResult

MAX_LABELLED_CELLS = 625
"""Heatmaps with more cells than this (25 x 25) show values on hover only."""

BEST = 10
"""Variants listed in the table of the best."""


def _fmt(metric: str, value: float) -> str:
    return format_metric(metric.removeprefix("train_").removeprefix("test_"), float(value))


def reading_section(result: SweepResult) -> str:
    """The verdict and its explanation, beside the DSR, PBO and walk-forward numbers."""
    r = reading(result.deflated, result.pbo)
    rows, attrs = [], []
    d, p, wf = result.deflated, result.pbo, result.walk_forward
    if d is not None:
        rows.append(["deflated Sharpe ratio (best variant)", f"{d.dsr:.3f}"
                     if math.isfinite(d.dsr) else "-",
                     f"≥ {DSR_LEVEL}: the best Sharpe beats the luck of {d.n_trials} trials"])
        attrs.append({"stat": "dsr", "value": repr(d.dsr)})
    if p is not None:
        rows.append(["probability of backtest overfitting", f"{p.pbo:.2f}",
                     f"≤ {PBO_LOW}: the ranking holds out of sample; > {PBO_HIGH}: it does "
                     "not"])
        attrs.append({"stat": "pbo", "value": repr(p.pbo)})
    if wf is not None:
        value = wf.metrics.get(result.metric, math.nan)
        rows.append([f"walk-forward, stitched out-of-sample {result.metric}",
                     _fmt(result.metric, value), f"{len(wf.folds)} anchored folds, "
                     f"{len(wf.returns)} bars"])
        attrs.append({"stat": "walk_forward", "value": repr(value)})
    content = (f'<p class="reading"><span class="verdict {escape(r.level)}">'
               f"{escape(r.verdict)}</span>{escape(r.text)}</p>")
    if rows:
        content += table(["statistic", "value", "reads"], rows, [False, True, False], attrs,
                         cls="overfitting")
    return section("What the statistics say", content)


def best_section(result: SweepResult, n: int = BEST) -> str:
    """The ``n`` best variants: their parameters and main metrics."""
    best = result.best(n).to_pylist()
    names: list[str] = []
    for p in result.params:
        names += [k for k in p if k not in names]
    shown = [result.rank_by]
    if result.train_end is not None:
        shown.append(f"test_{result.metric}")
    shown += [m for m in ("sharpe", "total_return", "max_drawdown", "n_bars")
              if m not in shown and m in result.table.column_names]
    several = len(set(result.strategies)) > 1
    head = ["#", *(["strategy"] if several else []), *names, *shown]
    rows = [[i, *([row["strategy"]] if several else []),
             *("" if row.get(k) is None else row[k] for k in names),
             *(_fmt(m, row[m]) for m in shown)] for i, row in enumerate(best, 1)]
    numeric = [True, *([False] if several else []), *([True] * (len(names) + len(shown)))]
    arrow = "lower is better" if lower_is_better(result.metric) else "higher is better"
    return section(f"Best {len(rows)} of {len(result.runs)} by {result.rank_by} ({arrow})",
                   '<div class="scroll">' + table(head, rows, numeric, cls="best") + "</div>")


def deflated_section(result: SweepResult) -> str:
    """What went into the deflated Sharpe ratio and PBO."""
    parts = []
    d = result.deflated
    if d is not None:
        parts.append(table(["deflated Sharpe ratio", "value"], [
            ["DSR", f"{d.dsr:.4f}"], ["best variant's Sharpe, per bar", f"{d.sharpe:.5f}"],
            ["expected best Sharpe of the trials by luck (SR0)", f"{d.expected_max:.5f}"],
            ["trials", d.n_trials], ["variance of the trials' Sharpe", f"{d.variance:.3g}"],
            ["bars of the best variant", d.n_obs]], [False, True], cls="dsr"))
    p = result.pbo
    if p is not None:
        parts.append(table(["probability of backtest overfitting (CSCV)", "value"], [
            ["PBO", f"{p.pbo:.4f}"], ["splits", p.n_splits],
            ["median logit of the in-sample pick's out-of-sample rank",
             f"{float(np.median(p.logits)):.3f}"]], [False, True], cls="pbo"))
    if not parts:
        return ""
    return section("Deflated Sharpe ratio and PBO", "".join(parts))


def walk_forward_section(result: SweepResult) -> str:
    """Each walk-forward fold: its training and test periods, the parameters it chose and
    the metric on both."""
    wf = result.walk_forward
    if wf is None:
        return ""
    m = result.metric
    rows = [[f.fold, format_ts(f.train_start)[:10], format_ts(f.train_end)[:10],
             format_ts(f.test_start)[:10], format_ts(f.test_end)[:10],
             params_text(result, f.chosen), _fmt(m, f.train_value), _fmt(m, f.test_value)]
            for f in wf.folds]
    content = '<div class="scroll">' + table(
        ["fold", "train from", "train to", "test from", "test to", "chosen parameters",
         f"train {m}", f"test {m}"], rows,
        [True, False, False, False, False, False, True, True], cls="folds") + "</div>"
    stitched = ", ".join(f"{k} {format_metric(k, v)}" for k, v in wf.metrics.items()
                         if k in ("sharpe", "total_return", "max_drawdown", "n_bars"))
    return section(f"Walk-forward ({len(wf.folds)} anchored folds)", content,
                   f"stitched out of sample: {stitched}" if stitched else "")


def heatmaps(result: SweepResult, metrics: list[str]) -> list[go.Figure]:
    """A heatmap per metric and pair of numeric parameters, each cell the best value over
    the other parameters, written in the cell (up to :data:`MAX_LABELLED_CELLS` cells)."""
    figs = []
    for metric in metrics:
        for x, y in itertools.combinations(numeric_params(result), 2):
            ux, uy, z = grid(x, y, result.table, metric)
            text = [["" if math.isnan(v) else _fmt(metric, v) for v in row] for row in z]
            label = z.size <= MAX_LABELLED_CELLS
            fig = go.Figure(layout=charts._layout(
                f"{metric} over {x} × {y} (best over other parameters)",
                height=max(320, min(720, 120 + 34 * len(uy)))))
            fig.add_trace(go.Heatmap(
                x=[str(v) for v in ux], y=[str(v) for v in uy], z=z.tolist(), text=text,
                texttemplate="%{text}" if label else None, textfont={"size": 11},
                colorscale="RdYlGn_r" if lower_is_better(metric) else "RdYlGn",
                colorbar={"title": {"text": metric}}, name=metric,
                hovertemplate=f"{x}=%{{x}}<br>{y}=%{{y}}<br>{metric}=%{{text}}<extra></extra>",
            ))
            fig.update_layout(hovermode="closest",
                              xaxis={"title": {"text": x}, "type": "category"},
                              yaxis={"title": {"text": y}, "type": "category"})
            figs.append(fig)
    return figs


def sweep_page(result: SweepResult, metrics: list[str] | None = None) -> str:
    """The sweep's page (see the module docstring); heatmaps of ``metrics`` (default: the
    ranked metric, and with a training cut its test-period value too).

    >>> from dataflows.sweep_flow import SweepStats, VariantRun
    >>> from qmtl.sweep.result import SweepResult
    >>> params = [{"fast": f, "slow": s} for f in (5, 10) for s in (20, 50)]
    >>> runs = [VariantRun(f"v{i}", np.arange(3), np.zeros(3), np.ones(3),
    ...                    {"sharpe": float(i)}) for i in range(4)]
    >>> html = sweep_page(SweepResult(["S"] * 4, params, runs, "sharpe", SweepStats()))
    >>> html.count('class="chart"'), "What the statistics say" in html
    (1, True)
    """
    if metrics is None:
        metrics = [result.rank_by]
        if result.train_end is not None:
            metrics.append(f"test_{result.metric}")
    figs = heatmaps(result, metrics)
    strategies = ", ".join(sorted(set(result.strategies)))
    settings = result.settings
    first = min(int(r.ts[0]) for r in result.runs if len(r.ts)) if any(
        len(r.ts) for r in result.runs) else None
    last = max(int(r.ts[-1]) for r in result.runs if len(r.ts)) if first is not None else None
    period = " → ".join(format_ts(t)[:10] if t is not None else "?" for t in (first, last))
    summary = result.summary()
    fingerprint = str((summary.get("data") or {}).get("fingerprint", "-"))[:16]
    cut = (f" · ranked on the bars up to {format_ts(result.train_end)[:10]}"
           if result.train_end is not None else "")
    head = (f"<header><h1>Sweep of {escape(strategies)}</h1>"
            f"<p>{len(result.runs)} variants · ranked by {escape(result.rank_by)}{escape(cut)}"
            f" · {escape(settings.get('interval', '?'))} · {escape(period)}</p>"
            f"<p>symbols {escape(', '.join(map(str, settings.get('symbols') or [])) or '-')}"
            f" · data fingerprint {escape(fingerprint)} · {result.seconds:.1f} s</p></header>")
    grid_html = "".join(f"<section>{chart_div(i)}</section>" for i in range(len(figs)))
    if not figs:
        grid_html = section("Heatmaps", "<p>none: the grid has fewer than two numeric "
                                        "parameters</p>")
    body = [reading_section(result), best_section(result), walk_forward_section(result),
            '<div class="grid">' + deflated_section(result) + grid_html + "</div>"]
    return page(f"qmtl sweep · {strategies}", body, figs, head)
