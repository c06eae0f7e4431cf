"""The sweep's heatmap page, opened as a person would with the internet cut: plotly draws
every heatmap from the script embedded in the page, nothing is fetched from outside, and
the cells hold the sweep's own values."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import numpy as np

from connectors.data.synthetic import generate_bars
from qmtl import Strategy, sweep
from tests.browser.conftest import console_errors, outside_requests, screenshot


class SmaCross(Strategy):
    symbols = ["A"]
    fast: int = 10
    slow: int = 50

    def signal(self, bars):
        return bars.close.sma(self.fast) > bars.close.sma(self.slow)


def test_the_heatmap_page_draws_offline(browser, tmp_path: Path) -> None:
    res = sweep(SmaCross, {"fast": "5:15:5", "slow": "30,60"}, {"A": generate_bars(600)},
                train_end="2016-06-30")
    res.write(tmp_path / "site")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(tmp_path / "site"), **k)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/heatmap.html")
        browser.set_script_timeout(20)
        ready = browser.execute_async_script(
            "const done = arguments[0]; const t0 = Date.now();"
            "(function wait() { const d = document.querySelectorAll('.js-plotly-plot');"
            " if (d.length === 2 && d[1].data) return done(d.length);"
            " if (Date.now() - t0 > 15000) return done(-1); setTimeout(wait, 100); })();")
        assert ready == 2
        z = browser.execute_script(
            "return document.querySelectorAll('.js-plotly-plot')[0].data[0].z")
        want = np.array(res.table.column("train_sharpe").to_pylist()).reshape(3, 2).T
        np.testing.assert_allclose(np.array(z, dtype=float), want, rtol=1e-12)
        # the heatmap cells are drawn (an SVG/canvas image per plot)
        assert browser.execute_script(
            "return document.querySelectorAll('.js-plotly-plot .heatmaplayer image').length"
        ) == 2
        assert outside_requests(browser) == []
        assert console_errors(browser) == []
        assert screenshot(browser, tmp_path, "heatmap").stat().st_size > 10_000
    finally:
        server.shutdown()
