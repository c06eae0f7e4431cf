"""The charts of a tear sheet and of a comparison, as plotly figures.

Each function takes plain arrays (times as int64 ns UTC) and returns a
``plotly.graph_objects.Figure``. Long series are drawn from their min/max-per-bucket points
(:mod:`qmtl.report.downsample`), so a chart of a million bars stays small and still shows
every extreme. Times go to plotly as milliseconds since the epoch on a date axis; the
figures carry no template (a page styles them once), which keeps each figure's JSON small.

>>> fig = line_chart("Equity", np.array([0, 86_400 * 10**9]), {"strategy": np.array([1.0, 1.1])})
>>> fig.layout.title.text, len(fig.data)
('Equity', 1)
"""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from qmtl.report.downsample import POINTS, minmax_indices

COLORS = ("#1f5fbf", "#888888", "#d95f02", "#1b9e77", "#7570b3", "#e7298a", "#66a61e",
          "#e6ab02", "#a6761d", "#444444")
"""Trace colours, in order (the strategy first, the benchmark second)."""

LOG_TOGGLE = {
    "type": "buttons", "direction": "left", "showactive": True, "active": 0,
    "x": 1.0, "xanchor": "right", "y": 1.0, "yanchor": "bottom", "pad": {"b": 4},
    "font": {"size": 11}, "bgcolor": "#f6f7f9", "bordercolor": "#cccccc",
    "buttons": [
        {"label": "linear", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
        {"label": "log", "method": "relayout", "args": [{"yaxis.type": "log"}]},
    ],
}
"""plotly buttons above a chart's top right corner that switch its y axis between a linear
and a log scale (on the equity chart: equal heights for equal percentage moves)."""

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _layout(title: str, yformat: str = "", height: int = 320) -> dict[str, object]:
    return {
        "title": {"text": title, "x": 0.01, "y": 0.98, "yanchor": "top",
                  "font": {"size": 15}},
        "height": height,
        "margin": {"l": 60, "r": 20, "t": 60, "b": 40},
        "template": "none",
        "paper_bgcolor": "white",
        "plot_bgcolor": "white",
        "hovermode": "x unified",
        "legend": {"orientation": "h", "y": 1.0, "x": 0.01, "yanchor": "bottom",
                   "bgcolor": "rgba(255,255,255,0.6)"},
        "yaxis": {"tickformat": yformat, "gridcolor": "#e5e5e5", "zerolinecolor": "#bbbbbb"},
        "xaxis": {"gridcolor": "#eeeeee"},
    }


def to_ms(ts: np.ndarray) -> np.ndarray:
    """int64 ns -> float ms since the epoch (plotly's numbers on a date axis).

    >>> to_ms(np.array([1_500_000])).tolist()
    [1.5]
    """
    return ts.astype(np.float64) / 1e6


def line_chart(
    title: str,
    ts: np.ndarray,
    series: dict[str, np.ndarray],
    yformat: str = "",
    fill: bool = False,
    points: int = POINTS,
    step: bool = False,
    log_toggle: bool = False,
) -> go.Figure:
    """One line per item of ``series`` over the times ``ts``, each drawn from its
    :func:`~qmtl.report.downsample.minmax_indices` (NaNs left out); ``fill`` shades to zero;
    ``log_toggle`` as in :func:`lines_chart`.

    >>> ts, y = np.arange(10_000) * 10**9, np.sin(np.arange(10_000.0))
    >>> fig = line_chart("t", ts, {"a": y}, points=100)
    >>> len(fig.data[0].y) <= 102, float(min(fig.data[0].y)) == float(y.min())
    (True, True)
    """
    return lines_chart(title, [(name, ts, y) for name, y in series.items()], yformat, fill,
                       points, step, log_toggle)


def lines_chart(
    title: str,
    traces: list[tuple[str, np.ndarray, np.ndarray]],
    yformat: str = "",
    fill: bool = False,
    points: int = POINTS,
    step: bool = False,
    log_toggle: bool = False,
) -> go.Figure:
    """Like :func:`line_chart` (``step``: a value holds until the next point), each line
    ``(name, ts, y)`` on times of its own (runs of a comparison need not share bars);
    ``log_toggle`` adds the buttons :data:`LOG_TOGGLE` (a linear or a log y axis).

    >>> fig = lines_chart("t", [("a", np.array([0, 10**9]), np.array([1.0, 2.0])),
    ...                         ("b", np.array([5 * 10**8]), np.array([1.5]))])
    >>> [len(t.x) for t in fig.data]
    [2, 1]
    """
    fig = go.Figure(layout=_layout(title, yformat))
    fig.update_xaxes(type="date")
    if log_toggle:
        fig.update_layout(updatemenus=[LOG_TOGGLE])
    for i, (name, ts, y) in enumerate(traces):
        keep = plotted(y, points)
        fig.add_trace(go.Scatter(
            x=to_ms(ts[keep]), y=y[keep], name=name, mode="lines",
            line={"color": COLORS[i % len(COLORS)], "width": 1.5,
                  "shape": "hv" if step else "linear"},
            fill="tozeroy" if fill else None,
        ))
    return fig


def plotted(y: np.ndarray, points: int = POINTS) -> np.ndarray:
    """Indices of ``y`` a line chart draws: the finite values' min/max per bucket
    (:func:`~qmtl.report.downsample.minmax_indices`), less the inner points of runs of
    equal values (a flat stretch is drawn by its two ends, the same line).

    >>> plotted(np.array([1.0, 2.0, 2.0, 2.0, np.nan, 3.0])).tolist()
    [0, 1, 3, 5]
    """
    finite = np.flatnonzero(np.isfinite(y))
    keep = finite[minmax_indices(y[finite], points)]
    if len(keep) > 2:
        v = y[keep]
        inner = (v[1:-1] == v[:-2]) & (v[1:-1] == v[2:])
        keep = keep[np.concatenate([[True], ~inner, [True]])]
    return keep


def monthly_heatmap(years: list[int], grid: np.ndarray) -> go.Figure:
    """Monthly returns, a row per year and a column per month (cells as percentages).

    >>> monthly_heatmap([2024], np.full((1, 12), 0.01)).data[0].type
    'heatmap'
    """
    text = [["" if np.isnan(v) else f"{v * 100:.1f}%" for v in row] for row in grid]
    limit = float(np.nanmax(np.abs(grid))) if np.isfinite(grid).any() else 1.0
    fig = go.Figure(layout=_layout("Monthly returns", height=max(200, 60 + 28 * len(years))))
    fig.add_trace(go.Heatmap(
        z=grid, x=list(MONTHS), y=[str(y) for y in years], text=text,
        texttemplate="%{text}", colorscale="RdYlGn", zmid=0.0, zmin=-limit, zmax=limit,
        hovertemplate="%{y} %{x}: %{text}<extra></extra>", showscale=False,
    ))
    fig.update_layout(hovermode="closest", yaxis={"autorange": "reversed", "type": "category"})
    return fig


def bar_chart(title: str, labels: list[str] | np.ndarray, series: dict[str, np.ndarray],
              yformat: str = ".1%") -> go.Figure:
    """Grouped bars: one group per label, one bar per item of ``series``; ``labels`` as
    ``datetime64`` periods go on a date axis.

    >>> len(bar_chart("Yearly", ["2024"], {"a": np.array([0.1]), "b": np.array([0.2])}).data)
    2
    """
    fig = go.Figure(layout=_layout(title, yformat))
    dates = isinstance(labels, np.ndarray) and np.issubdtype(labels.dtype, np.datetime64)
    x = to_ms(labels.astype("datetime64[ns]").astype(np.int64)) if dates else labels
    for i, (name, y) in enumerate(series.items()):
        fig.add_trace(go.Bar(x=x, y=y, name=name, marker_color=COLORS[i % len(COLORS)]))
    fig.update_layout(barmode="group", hovermode="closest",
                      xaxis={"type": "date" if dates else "category"})
    return fig


def histogram_chart(edges: np.ndarray, counts: np.ndarray) -> go.Figure:
    """The distribution of bar returns, from precomputed bins (never every return).

    >>> histogram_chart(np.array([0.0, 0.1, 0.2]), np.array([1, 3])).data[0].type
    'bar'
    """
    centres = (edges[:-1] + edges[1:]) / 2
    fig = go.Figure(layout=_layout("Distribution of bar returns"))
    fig.add_trace(go.Bar(x=centres, y=counts, width=np.diff(edges), name="bars",
                         marker_color=COLORS[0]))
    fig.update_layout(hovermode="closest", bargap=0.02, xaxis={"tickformat": ".2%"},
                      yaxis={"title": {"text": "bars"}})
    return fig


def contributions_chart(contrib: dict[str, float], most: int = 30) -> go.Figure:
    """Each symbol's contribution to the total return, largest at the top (the ``most``
    largest in absolute value when there are more symbols).

    >>> list(contributions_chart({"A": 0.1, "B": -0.2}).data[0].y)
    ['B', 'A']
    """
    items = sorted(contrib.items(), key=lambda kv: abs(kv[1]), reverse=True)[:most]
    items.sort(key=lambda kv: kv[1])
    title = "Contribution to total return, by symbol"
    if len(contrib) > most:
        title += f" (the {most} largest of {len(contrib)})"
    fig = go.Figure(layout=_layout(title, height=max(220, 60 + 22 * len(items))))
    fig.add_trace(go.Bar(
        x=[v for _, v in items], y=[k for k, _ in items], orientation="h",
        marker_color=[COLORS[0] if v >= 0 else COLORS[2] for _, v in items], name="P&L",
    ))
    fig.update_layout(hovermode="closest", xaxis={"tickformat": ".1%"},
                      yaxis={"type": "category", "tickformat": ""})
    return fig
