"""The sweep's page, opened as a person would with the internet cut: plotly.js unpacks from
the page itself, every heatmap draws with its values written in its cells, the reading of
DSR and PBO and the walk-forward folds (with their parameters) are shown, nothing is
fetched from outside, and the console has no errors."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

import numpy as np
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from connectors.data.synthetic import generate_bars
from qmtl import Strategy, sweep
from qmtl.report.sweep import reading
from tests.browser.conftest import console_errors, outside_requests, screenshot


class SmaCross(Strategy):
    symbols = ["A"]
    fast: int = 10
    slow: int = 50

    def signal(self, bars):
        return bars.close.sma(self.fast) > bars.close.sma(self.slow)


def test_the_sweep_page_draws_offline(browser, tmp_path: Path) -> None:
    res = sweep(SmaCross, {"fast": "5:15:5", "slow": "30,60"}, {"A": generate_bars(600)},
                train_end="2016-06-30", walk_forward=2, pbo=True, pbo_splits=4)
    res.write(tmp_path / "site")
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(tmp_path / "site"), **k)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        browser.get(f"http://127.0.0.1:{server.server_address[1]}/heatmap.html")
        WebDriverWait(browser, 30).until(lambda d: d.execute_script(
            "return [...document.querySelectorAll('.js-plotly-plot')]"
            ".filter(p => p.querySelector('.heatmaplayer image')).length") == 2)
        z = browser.execute_script("return document.getElementById('chart-0').data[0].z")
        want = np.array(res.table.column("train_sharpe").to_pylist()).reshape(3, 2).T
        np.testing.assert_allclose(np.array(z, dtype=float), want, rtol=1e-12)
        # each cell's value is written in it: one text mark per cell with a value
        for i, metric in enumerate(["train_sharpe", "test_sharpe"]):
            shown = browser.execute_script(
                f"return [...document.querySelectorAll('#chart-{i} g.hm text, "
                f"#chart-{i} .textpoint text')].map(t => t.textContent)")
            values = np.array(res.table.column(metric).to_pylist(), dtype=float)
            assert sorted(shown) == sorted(f"{v:.3f}" for v in values if np.isfinite(v))
        r = reading(res.deflated, res.pbo)
        verdict = browser.find_element(By.CSS_SELECTOR, "p.reading .verdict")
        assert verdict.text == r.verdict and verdict.is_displayed()
        folds = browser.find_elements(By.CSS_SELECTOR, "table.folds tbody tr")
        assert len(folds) == 2
        keys = [v.key for v in res.runs]
        for fold, row in zip(res.walk_forward.folds, folds, strict=True):
            p = res.params[keys.index(fold.chosen)]
            assert row.find_elements(By.TAG_NAME, "td")[5].text == (
                f"fast={p['fast']}, slow={p['slow']}")
        assert outside_requests(browser) == []
        assert console_errors(browser) == []
        assert screenshot(browser, tmp_path, "heatmap").stat().st_size > 10_000
    finally:
        server.shutdown()
