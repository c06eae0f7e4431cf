"""The page itself: escaped text, nothing from outside, plotly.js packed and intact, bounded
size, Python entry points."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path

import numpy as np
import plotly
import plotly.graph_objects as go
import pyarrow as pa
import pytest

from connectors.data.synthetic import generate_bars
from qmtl import Strategy, backtest
from qmtl.report import compare_page, from_result, load_run, tear_sheet
from qmtl.report.html import plotly_js, plotly_js_packed
from qmtl.report.sheet import BUDGET, NARROW, WIDE
from qmtl.result import BacktestResult
from tests.qmtl.report.test_cli import SRC

PLOTLY_MIN_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
DATA_BLOCK = re.compile(
    r'<script type="application/gzip" data-encoding="base64" id="qmtl-plotly">(.*?)</script>',
    re.S)
DRAW = re.compile(r"^qmtlDraw\((\d+),(.*)\);$", re.M)


def drawn(page: str) -> dict[int, dict]:
    """The figures a page draws, by chart index, as plotly JSON."""
    return {int(i): json.loads(spec.replace("<\\/", "</")) for i, spec in DRAW.findall(page)}


def values(array: object) -> np.ndarray:
    """A trace's array as plotly's JSON holds it (a list, or typed ``bdata``)."""
    if isinstance(array, dict):
        return np.frombuffer(base64.b64decode(array["bdata"]), np.dtype(array["dtype"]))
    return np.asarray(array)


class Jitter(Strategy):
    """A weight that changes at every bar: every plotted line has a new value each bar."""

    symbols = ["AAA"]

    def signal(self, bars):
        return (bars.close.zscore(20) * -0.3).clip(-1.0, 1.0)


@pytest.fixture(scope="module")
def million() -> BacktestResult:
    """A backtest over 1,000,000 generated minute bars."""
    data = {"AAA": generate_bars(1_000_000, interval="1m", seed=5)}
    return backtest(Jitter, data=data)


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
    assert len(scripts) == 2  # the browser check, then the figures: nothing closed early
    assert "</script" not in scripts[1] and scripts[1].count("qmtlDraw(") == 11  # 10 + def
    assert "\\u003c\\u002fscript\\u003e\\u003cb\\u003ex" in scripts[1]  # plotly's escapes


def test_plotly_js_is_embedded_once_packed_and_unpacks_to_plotly_min_js(result):
    page = tear_sheet(from_result(result))
    blocks = DATA_BLOCK.findall(page)
    assert len(blocks) == 1
    assert gzip.decompress(base64.b64decode(blocks[0], validate=True)) == \
        PLOTLY_MIN_JS.read_bytes()
    assert plotly_js()[:200] not in page  # not also embedded as it is
    assert plotly_js_packed() is plotly_js_packed()  # packed once per process
    assert len(blocks[0]) < 0.45 * PLOTLY_MIN_JS.stat().st_size


def test_every_chart_waits_for_plotly_js_and_falls_back_to_a_note(result):
    page = tear_sheet(from_result(result))
    assert sorted(drawn(page)) == list(range(10))
    assert page.count("Plotly.newPlot") == 0 and page.count("P.newPlot(") == 1
    assert "qmtlPlotly.then(" in page  # the one place a chart is drawn
    note = re.search(r'<p class="note banner" id="qmtl-note" hidden>(.*?)</p>', page, re.S)
    assert note and "DecompressionStream" in note.group(1)
    assert page.index('id="qmtl-note"') < page.index('class="metrics"')


def test_a_million_bar_sheet_stays_under_its_budget(million):
    page = tear_sheet(from_result(million))
    assert len(page.encode("utf-8")) < BUDGET
    figures = drawn(page)
    # the worst case: every line of the sheet has (nearly) as many points as it may
    limits = {0: WIDE, 1: WIDE, 4: NARROW, 5: NARROW, 7: NARROW}
    for i, limit in limits.items():
        for trace in figures[i]["data"]:
            assert 0.99 * limit <= len(values(trace["y"])) <= limit + 2, (i, trace["name"])
    assert len(figures[0]["data"]) == 2  # the strategy and its benchmark
    bottom = values(figures[1]["data"][0]["y"]).min()
    assert -bottom == million.metrics["max_drawdown"]  # min/max downsampling keeps it


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
    assert sorted(drawn(compare_page([run, run]))) == [0, 1]
