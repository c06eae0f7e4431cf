"""The tear sheet and the comparison page, opened in a real headless Chromium with the
internet cut: every chart draws, nothing is fetched from outside 127.0.0.1, the console has
no errors, and the metrics shown are those of metrics.json.

The page is served by a local ``http.server`` (``outside_requests`` counts a ``file://`` URL
as leaving 127.0.0.1, since it has no host), from the run folder itself.
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
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
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
