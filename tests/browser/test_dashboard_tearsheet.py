"""A strategy's tear sheet in a real headless Chromium: its charts and numbers are computed in
the browser from the strategy's streamed returns, and they equal a numpy reference computed
here from the same API answer; a new update redraws it without a reload."""

from __future__ import annotations

import math

import httpx
import numpy as np
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import console_errors, outside_requests, screenshot
from tests.browser.dashboard_world import leave, plotted, populate, update, world_service
from world_api.domain.world_returns import annualization


def _reference(ts: np.ndarray, r: np.ndarray) -> dict[str, float]:
    eq = np.cumprod(1 + r)
    dd = eq / np.maximum.accumulate(np.concatenate([[1.0], eq]))[1:] - 1
    ppy = annualization(ts)  # the world service's own: the series' points a year
    return {
        "periods": len(r), "total_return": eq[-1] - 1, "ppy": ppy,
        "volatility": r.std(ddof=1) * math.sqrt(ppy),
        "sharpe": r.mean() / r.std(ddof=1) * math.sqrt(ppy),
        "max_drawdown": -dd.min(), "best": r.max(), "worst": r.min(),
        "hit_rate": float((r > 0).mean()),
    }


def _computed(driver) -> dict[str, float]:
    return driver.execute_script(
        "const o = {}; for (const td of document.querySelectorAll('td[data-computed]'))"
        " o[td.dataset.computed] = td.dataset.v === '' ? null : +td.dataset.v; return o;")


def test_the_tear_sheet_is_computed_from_the_streamed_returns(browser, tmp_path):
    with world_service(tmp_path) as svc:
        populate(svc, "demo", 6, bars=200)
        url = f"{svc.url}/worlds/demo/strategies/s0001"
        view = httpx.get(url).json()
        points = httpx.get(f"{url}/returns").json()["points"]
        ts = np.array([p["ts"] for p in points], dtype=np.int64)
        r = np.array([p["return"] for p in points])
        assert len(r) == 200

        browser.get(f"{svc.url}/ui/worlds/demo/strategies/s0001")
        WebDriverWait(browser, 20).until(lambda d: plotted(d) == 4)
        shown = browser.execute_script(  # read at once: the sheet redraws on updates
            "const o = {}; for (const e of document.querySelectorAll('[data-field]'))"
            " o[e.dataset.field] = e.dataset.v; return o;")
        for field in ("weight", "rank", "score", "n_bars", "contribution"):
            value = shown[field]
            assert (None if value == "" else float(value)) == view[field], field
        metrics = browser.execute_script(
            "const o = {}; for (const td of document.querySelectorAll('#metrics td[data-metric]'))"
            " o[td.dataset.metric] = +td.dataset.v; return o;")
        assert metrics == view["metrics"]

        got, want = _computed(browser), _reference(ts, r)
        assert set(got) == set(want)
        # 200 points a day apart: 199 gaps over 199 days, 365 a year as a backtest counts
        assert want["ppy"] == 365.0
        for key, value in want.items():
            assert math.isclose(got[key], value, rel_tol=1e-9, abs_tol=1e-12), key

        charts = browser.execute_script(
            "const y = (id) => document.getElementById(id).data[0];"
            "return {eq: y('chart-equity').y, dd: y('chart-drawdown').y,"
            " rs: y('chart-sharpe').y, hist: y('chart-dist').x};")
        eq = np.cumprod(1 + r)
        np.testing.assert_allclose(charts["eq"], eq, rtol=1e-12)
        np.testing.assert_allclose(charts["dd"], eq / np.maximum.accumulate(
            np.maximum(eq, 1.0)) - 1, rtol=1e-9, atol=1e-15)
        assert charts["hist"] == r.tolist()
        window = max(5, min(63, len(r) // 4))
        rolled = [None] * (window - 1) + [
            r[i - window + 1:i + 1].mean() / r[i - window + 1:i + 1].std(ddof=1)
            * math.sqrt(want["ppy"]) for i in range(window - 1, len(r))]
        assert charts["rs"][: window - 1] == rolled[: window - 1]
        np.testing.assert_allclose(charts["rs"][window - 1:], rolled[window - 1:], rtol=1e-8)
        assert outside_requests(browser) == [] and console_errors(browser) == []
        screenshot(browser, tmp_path, "tearsheet")

        # ten more returns streamed: the tear sheet follows without a reload
        origin = browser.execute_script("return performance.timeOrigin")
        more = np.random.default_rng(3).normal(0, 0.01, 10)
        with svc.client("developer") as c:
            c.post_metrics("demo", [update("demo", "s0001", 2, more, 200, view["metrics"]
                                           ["sharpe"])])
        WebDriverWait(browser, 2).until(lambda d: _computed(d).get("periods") == 210)
        assert math.isclose(_computed(browser)["total_return"],
                            float(np.prod(1 + np.concatenate([r, more])) - 1), rel_tol=1e-9)
        assert browser.execute_script("return performance.timeOrigin") == origin
        assert console_errors(browser) == []
        leave(browser)


def test_the_pages_read_every_point_a_page_at_a_time(browser, tmp_path):
    """The returns endpoints answer at most ``limit`` points; the page follows ``after``
    until a short page (here with pages of 7 points for the 200 of a strategy)."""
    with world_service(tmp_path) as svc:
        populate(svc, "demo", 2, bars=200)
        path = "/worlds/demo/strategies/s0001/returns"
        want = httpx.get(f"{svc.url}{path}").json()["points"]
        browser.get(f"{svc.url}/ui")
        got = browser.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "import('/ui/static/api.js').then(m => m.allPoints(arguments[0], 7)).then(done);",
            path)
        assert got == want and len(got) == 200
        assert console_errors(browser) == []
        leave(browser)
