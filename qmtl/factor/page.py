"""The factor analysis as one offline HTML page in the tear sheet's style (the report's own
page, charts and tables: :mod:`qmtl.report.html`), with the numbers in ``factor.json``
beside it. One section per alpha when there are several, a summary table first.

>>> import tempfile
>>> from connectors.data.synthetic import generate_bars
>>> from qmtl.factor.api import factors
>>> data = {s: generate_bars(60, seed=i) for i, s in enumerate("ABCDE")}
>>> reps, _ = factors(["rank(returns)", "-close"], data, symbols=list("ABCDE"))
>>> path = write_page(reps, tempfile.mkdtemp())
>>> path.name, (path.parent / "factor.json").exists()
('factor.html', True)
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go

from qmtl.factor.api import FactorReport
from qmtl.report.charts import bar_chart, line_chart
from qmtl.report.html import chart_div, page, section, table

__all__ = ["factor_page", "write_page"]


def _f(x: float, pct: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.2%}" if pct else f"{x:.4f}"


def _alpha_sections(rep: FactorReport, figures: list[go.Figure]) -> list[str]:
    st = rep.stats
    rows = []
    for h, hs in st.horizons.items():
        rows.append([f"{h}", _f(hs.ic_summary.mean), _f(hs.rank_ic_summary.mean),
                     _f(hs.rank_ic_summary.std), _f(hs.rank_ic_summary.icir),
                     _f(hs.rank_ic_summary.t_stat),
                     _f(float(np.nanmean(hs.spread)) if np.isfinite(hs.spread).any()
                        else math.nan, pct=True)])
    out = [section(f"{rep.name}: information coefficient", table(
        ["horizon (bars)", "IC mean", "rank IC mean", "rank IC std", "ICIR", "t-stat",
         "spread mean"], rows, [False, *[True] * 6]),
        note=rep.text or "")]
    first = min(st.horizons)
    charts = [
        line_chart(f"Rank IC, {first}-bar horizon", st.ts,
                   {"rank IC": st.horizons[first].rank_ic}),
        bar_chart("IC decay (mean rank IC by horizon)", [str(h) for h in st.horizons],
                  {"rank IC": np.array(list(st.decay().values()))}, yformat=".3f"),
        bar_chart("Mean forward return by quantile", [f"Q{q}" for q in
                                                      range(1, st.quantiles + 1)],
                  {f"{h} bars": np.array(hs.quantile_mean) for h, hs in st.horizons.items()},
                  yformat=".2%"),
        line_chart(f"Top minus bottom quantile, cumulative ({first}-bar)", st.ts,
                   {"spread": st.horizons[first].cumulative_spread}, yformat=".1%"),
        line_chart("Turnover of the top and bottom quantiles", st.ts,
                   {f"Q{q}": t for q, t in st.turnover.items()}, yformat=".0%"),
        line_chart("Factor rank autocorrelation", st.ts, {"lag 1": st.rank_autocorr}),
    ]
    divs = []
    for fig in charts:
        divs.append(chart_div(len(figures)))
        figures.append(fig)
    out.append(section("", "".join(divs)))
    groups = st.horizons[first].group_ic
    if groups:
        out.append(section("Rank IC by group", table(
            ["group", *[f"{h} bars" for h in st.horizons]],
            [[g, *[_f(hs.group_ic.get(g, math.nan)) for hs in st.horizons.values()]]
             for g in groups], [False, *[True] * len(st.horizons)])))
    out.append(section("Monthly rank IC", table(
        ["month", f"rank IC ({first} bars)"],
        [[m, _f(v)] for m, v in rep.monthly_ic.items()], [False, True])))
    return out


def factor_page(reports: Sequence[FactorReport], dedup: float = 1.0) -> str:
    """The page's HTML (see the module docstring).

    >>> factor_page([])
    Traceback (most recent call last):
    ...
    ValueError: no factors to show
    """
    if not reports:
        raise ValueError("no factors to show")
    figures: list[go.Figure] = []
    sections = []
    if len(reports) > 1:
        first = min(reports[0].stats.horizons)
        ranked = sorted(reports, key=lambda r: -abs(np.nan_to_num(
            r.stats.horizons[first].rank_ic_summary.icir)))
        sections.append(section(
            f"{len(reports)} alphas, one flow (nodes shared: dedup {dedup:.1f}x)",
            table(["alpha", "rank IC", "ICIR", "t-stat", "text"],
                  [[r.name, _f(r.stats.horizons[first].rank_ic_summary.mean),
                    _f(r.stats.horizons[first].rank_ic_summary.icir),
                    _f(r.stats.horizons[first].rank_ic_summary.t_stat), r.text or ""]
                   for r in ranked], [False, True, True, True, False])))
    for rep in reports[:20]:
        sections.extend(_alpha_sections(rep, figures))
    header = "<header><h1>Factor analysis</h1></header>"
    return page("Factor analysis", sections, figures, header)


def write_page(reports: Sequence[FactorReport], out: str | Path, dedup: float = 1.0) -> Path:
    """Write ``factor.html`` and ``factor.json`` into the folder ``out``; the page's path.
    Both are written whole or not at all (each to a temporary name, then renamed)."""
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    html = factor_page(reports, dedup)
    numbers = json.dumps({"dedup": dedup, "factors": [r.to_json() for r in reports]},
                         indent=1, allow_nan=False)
    for name, text in (("factor.json", numbers), ("factor.html", html)):
        tmp = folder / f".{name}.tmp"
        tmp.write_text(text)
        tmp.replace(folder / name)
    return folder / "factor.html"
