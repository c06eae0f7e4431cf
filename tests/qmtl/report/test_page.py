"""The page itself: escaped text, nothing from outside, bounded size, Python entry points."""

from __future__ import annotations

import re

import plotly.graph_objects as go
import pyarrow as pa

from qmtl.report import compare_page, from_result, load_run, tear_sheet
from qmtl.report.html import plotly_js
from tests.qmtl.report.test_cli import SRC


def test_text_from_the_run_is_escaped(result):
    run = from_result(result)
    run.doc = dict(run.doc, strategy="<script>alert(1)</script>",
                   params={"name": '"><img src=x onerror=alert(1)>'})
    page = tear_sheet(run)
    assert "<script>alert(1)" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert SRC.search(page) is None


def test_a_symbol_named_like_a_closing_tag_cannot_end_a_script(result):
    run = from_result(result)
    run.rows.symbols = ["</script><b>x", "BBB"]
    page = tear_sheet(run)
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert len(scripts) == 2  # plotly.js, then the figures: nothing closed early
    assert "</script" not in scripts[1]
    assert "\\u003c\\u002fscript\\u003e\\u003cb\\u003ex" in scripts[1]  # plotly's escapes


def test_plotly_js_is_embedded_once_and_the_page_stays_small(result):
    page = tear_sheet(from_result(result))
    assert page.count(plotly_js()[:200]) == 1
    assert len(page.encode()) - len(plotly_js().encode()) < 200_000


def test_result_plot_report_and_load(result, tmp_path):
    fig = result.plot()
    assert isinstance(fig, go.Figure)
    assert [t.name for t in fig.data] == ["Cross", "buy & hold, equal weight", "drawdown"]
    path = result.report(tmp_path / "r.html", benchmark="BBB")
    assert path.is_file() and "buy &amp; hold BBB" in path.read_text()
    result.write(tmp_path / "run")
    run = load_run(tmp_path / "run")
    assert run.metrics == result.metrics and run.name == "run"
    assert isinstance(run.trades(), pa.Table)
    assert compare_page([run, run]).count("Plotly.newPlot(") == 2
