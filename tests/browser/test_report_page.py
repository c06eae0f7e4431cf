"""The tear sheet and the comparison page, opened in a real headless Chromium with the
internet cut: plotly.js unpacks, every chart draws, nothing is fetched from outside
127.0.0.1, the console has no errors, and the metrics shown are those of metrics.json; in a
browser without DecompressionStream, a note says why there are no charts and the metrics
still read.

The page is served by a local ``http.server`` (``outside_requests`` counts a ``file://`` URL
as leaving 127.0.0.1, since it has no host), from the run folder itself, under a
Content-Security-Policy that allows inline scripts and styles and ``data:`` images but no
``eval`` and no ``blob:``: the page needs nothing more than its inline scripts.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from connectors.data.synthetic import generate_bars
from qmtl import Strategy, backtest
from qmtl.cli.common import format_metric
from qmtl.report import load_run, write_compare, write_report
from tests.browser.conftest import console_errors, outside_requests, screenshot

SHEET_CHARTS = 10
COMPARE_CHARTS = 2
CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
       "img-src data:")

PROBE = """<!DOCTYPE html><html><head><script>
try { new Function("return 1"); window.evaluated = "ran"; } catch (e) { window.evaluated = e.name; }
const s = document.createElement("script");
s.src = URL.createObjectURL(new Blob(["window.fromBlob = 1;"]));
s.onload = () => { window.blob = "ran"; };
s.onerror = () => { window.blob = "refused"; };
document.head.appendChild(s);
</script></head><body></body></html>"""
"""A page that tries what :data:`CSP` forbids: an eval and a script from a ``blob:`` URL."""


class Handler(http.server.SimpleHTTPRequestHandler):
    """Files of a folder, each sent with :data:`CSP`."""

    def end_headers(self) -> None:
        self.send_header("Content-Security-Policy", CSP)
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class Cross(Strategy):
    symbols = ["AAA", "BBB"]
    fast: int = 10
    slow: int = 40
    cost_bps = 2.0

    def signal(self, bars):
        return bars.close.sma(self.fast) > bars.close.sma(self.slow)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """Two run folders with reports under ``tmp_path/site``, served at the returned URL."""
    site = tmp_path / "site"
    data = {"AAA": generate_bars(900, seed=3), "BBB": generate_bars(900, seed=4)}
    for name, fast in (("run_a", 10), ("run_b", 20)):
        backtest(Cross, data=data, fast=fast).write(site / name)
        write_report(load_run(site / name), site / name / "report.html")
    write_compare([load_run(site / "run_a"), load_run(site / "run_b")], site / "compare.html")
    (site / "probe.html").write_text(PROBE)
    handler = functools.partial(Handler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def rendered_charts(driver) -> list[int]:
    """For each plotly chart on the page, how many drawn marks its plot area holds."""
    return driver.execute_script("""
        return [...document.querySelectorAll('.js-plotly-plot')].map(d => {
            const svg = d.querySelector('svg.main-svg');
            if (!svg) return 0;
            return d.querySelectorAll(
                'g.trace path, g.trace rect, g.point path, g.hm image, .heatmaplayer image'
            ).length;
        });""")


def open_page(driver, url: str, charts: int) -> None:
    driver.get(url)
    WebDriverWait(driver, 30).until(
        lambda d: len([n for n in rendered_charts(d) if n > 0]) >= charts)


def test_tear_sheet_renders_offline_with_the_runs_metrics(browser, served, tmp_path):
    site, url = served
    open_page(browser, f"{url}/run_a/report.html", SHEET_CHARTS)
    counts = rendered_charts(browser)
    assert len(counts) == SHEET_CHARTS and all(n > 0 for n in counts), counts
    assert outside_requests(browser) == []
    assert console_errors(browser) == []
    doc = json.loads((site / "run_a" / "metrics.json").read_text())
    shown = browser.execute_script("""
        return [...document.querySelectorAll('table.metrics tr[data-metric]')].map(
            r => [r.dataset.metric, r.dataset.value, r.cells[1].textContent]);""")
    assert [m for m, _, _ in shown] == list(doc["metrics"])
    for metric, value, text in shown:
        assert json.loads(value) == doc["metrics"][metric]
        want = doc["metrics"][metric]
        assert text == format_metric(metric, float("nan") if want is None else want)
    # the charts' data as drawn: times decoded back to the run's first and last bar, and
    # the drawdown's bottom at the run's max drawdown (min/max downsampling keeps it)
    first, last, bottom = browser.execute_script("""
        const eq = document.getElementById('chart-0').data[0].x;
        const dd = Array.from(document.getElementById('chart-1')._fullData[0].y);
        return [eq[0], eq[eq.length - 1], Math.min(...dd)];""")
    assert (first, last) == (doc["start"] / 1e6, doc["end"] / 1e6)
    assert -bottom == pytest.approx(doc["metrics"]["max_drawdown"], rel=1e-12)
    settings = browser.find_element(By.CSS_SELECTOR, "table.settings").text
    assert doc["data"]["fingerprint"] in settings and "params.fast" in settings
    assert browser.find_elements(By.CSS_SELECTOR, "table.trades tbody tr")
    path = screenshot(browser, tmp_path, "tearsheet")
    assert path.stat().st_size > 10_000
    keep = os.environ.get("QMTL_TEARSHEET_PNG")  # to refresh docs/img/tearsheet.png
    if keep:
        browser.set_window_size(1400, 1500)
        shutil.copy(screenshot(browser, tmp_path, "tearsheet-tall"), keep)


def test_compare_page_overlays_both_runs(browser, served, tmp_path):
    site, url = served
    open_page(browser, f"{url}/compare.html", COMPARE_CHARTS)
    assert outside_requests(browser) == []
    assert console_errors(browser) == []
    legends = browser.execute_script(
        "return [...document.querySelectorAll('.js-plotly-plot')[0].querySelectorAll("
        "'.legendtext')].map(e => e.textContent);")
    assert legends == ["run_a", "run_b"]
    rows = browser.execute_script("""
        return [...document.querySelectorAll('table.metrics tr[data-metric]')].map(
            r => [r.dataset.metric, JSON.parse(r.dataset.values)]);""")
    a = json.loads((site / "run_a" / "metrics.json").read_text())["metrics"]
    b = json.loads((site / "run_b" / "metrics.json").read_text())["metrics"]
    assert rows == [[m, [a[m], b[m]]] for m in a]
    screenshot(browser, tmp_path, "compare")


def test_without_decompression_stream_a_note_says_why_and_the_metrics_read(
        browser, served, request):
    site, url = served
    added = browser.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument",
                                    {"source": "delete window.DecompressionStream;"})
    request.addfinalizer(lambda: browser.execute_cdp_cmd(
        "Page.removeScriptToEvaluateOnNewDocument", {"identifier": added["identifier"]}))
    browser.get(f"{url}/run_a/report.html")
    WebDriverWait(browser, 30).until(
        lambda d: d.find_element(By.ID, "qmtl-note").is_displayed())
    assert "DecompressionStream" in browser.find_element(By.ID, "qmtl-note").text
    assert browser.execute_script("return typeof Plotly") == "undefined"
    assert rendered_charts(browser) == []
    doc = json.loads((site / "run_a" / "metrics.json").read_text())
    table = browser.find_element(By.CSS_SELECTOR, "table.metrics")
    assert table.is_displayed()
    shown = [r.get_attribute("data-metric")
             for r in table.find_elements(By.CSS_SELECTOR, "tr[data-metric]")]
    assert shown == list(doc["metrics"])
    assert outside_requests(browser) == []
    assert console_errors(browser) == []


def test_the_note_stays_hidden_where_plotly_js_unpacks(browser, served):
    _, url = served
    open_page(browser, f"{url}/run_b/report.html", SHEET_CHARTS)
    assert not browser.find_element(By.ID, "qmtl-note").is_displayed()
    assert browser.execute_script("return typeof Plotly.newPlot") == "function"
    assert browser.find_elements(By.ID, "qmtl-plotly") == []  # the packed text, let go
    assert console_errors(browser) == []
    # a control: under this policy a page's eval and blob: script are refused
    browser.get(f"{url}/probe.html")
    WebDriverWait(browser, 10).until(lambda d: d.execute_script("return window.blob"))
    assert browser.execute_script("return [window.evaluated, window.blob]") == [
        "EvalError", "refused"]
    assert any("blob:" in e for e in console_errors(browser))  # the refusal, logged


def test_equity_switches_to_a_log_scale_and_names_the_strategy(browser, served, tmp_path):
    _, url = served
    open_page(browser, f"{url}/run_a/report.html", SHEET_CHARTS)
    legends = browser.execute_script(
        "return [...document.getElementById('chart-0').querySelectorAll('.legendtext')]"
        ".map(e => e.textContent);")
    assert legends == ["Cross", "buy & hold, equal weight"]  # not the folder's name, run_a
    axis = "return document.getElementById('chart-0')._fullLayout.yaxis.type;"
    assert browser.execute_script(axis) == "linear"
    buttons = browser.find_elements(By.CSS_SELECTOR, "#chart-0 g.updatemenu-button")
    labels = [b.find_element(By.CSS_SELECTOR, ".updatemenu-item-text").text for b in buttons]
    assert labels == ["linear", "log"]
    buttons[1].click()
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(axis) == "log")
    # the log axis spans the equity's own range (log10 of its lowest and highest value)
    low, high = browser.execute_script(
        "const g = document.getElementById('chart-0');"
        "const y = g._fullData.flatMap(t => Array.from(t.y));"
        "return [Math.min(...y), Math.max(...y)];")
    lo, hi = browser.execute_script(
        "return document.getElementById('chart-0')._fullLayout.yaxis.range;")
    assert lo <= np.log10(low) and hi >= np.log10(high)
    screenshot(browser, tmp_path, "tearsheet-log")
    buttons[0].click()
    WebDriverWait(browser, 10).until(lambda d: d.execute_script(axis) == "linear")
    assert console_errors(browser) == []
