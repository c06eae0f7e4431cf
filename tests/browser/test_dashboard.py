"""The world dashboard in a real headless Chromium with the internet cut, against a real
world service (uvicorn in a thread, SQLite store): it loads with no request leaving
127.0.0.1, draws its charts, shows the API's numbers, follows a metrics update live without
a reload, and keeps the console clean."""

from __future__ import annotations

import httpx
import numpy as np
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import console_errors, outside_requests, screenshot
from tests.browser.dashboard_world import (
    WARMUP,
    cell,
    leave,
    plotted,
    populate,
    update,
    wait_for,
    world_service,
)


def _cells(driver, col: str) -> dict[str, str]:
    """The ``data-v`` of column ``col`` for each row of the activation table's page."""
    return driver.execute_script(
        "const out = {}; for (const tr of document.querySelectorAll('#activation tbody tr'))"
        " out[tr.dataset.sid] = tr.querySelector(`td[data-col='${arguments[0]}']`).dataset.v;"
        " return out;", col)


def _num(text: str) -> float | None:
    return None if text == "" else float(text)


def test_world_page_loads_offline_draws_its_charts_and_shows_the_apis_numbers(browser, tmp_path):
    with world_service(tmp_path) as svc:
        populate(svc, "demo", 12, live=30)
        with svc.client() as c:
            plan = c.plan("demo")
            views = {v["strategy_id"]: v for v in c.strategies("demo")}
            weights = c.allocations("demo")["weights"]
        curves = {kind: httpx.get(f"{svc.url}/worlds/demo/returns?kind={kind}").json()["points"]
                  for kind in ("realized", "pro_forma")}
        metrics = httpx.get(f"{svc.url}/worlds/demo/metrics").json()
        assert len(curves["realized"]) == 30 and len(curves["pro_forma"]) == 150
        browser.get(f"{svc.url}/ui/worlds/demo")
        wait_for(browser, "#activation tbody tr[data-sid]")
        WebDriverWait(browser, 20).until(lambda d: plotted(d) == 3)  # equity, contrib., alloc.

        for col in ("weight", "score", "rank", "n_bars", "contribution"):
            shown = {sid: _num(v) for sid, v in _cells(browser, col).items()}
            assert shown == {sid: v[col] for sid, v in views.items()}, col
        sharpe = {sid: _num(v) for sid, v in _cells(browser, "sharpe").items()}
        assert sharpe == {sid: v["metrics"]["sharpe"] for sid, v in views.items()}
        # the table is in rank order, unranked (rejected) strategies last
        order = browser.execute_script(
            "return [...document.querySelectorAll('#activation tbody tr')].map(r => r.dataset.sid)")
        ranked = sorted((v["rank"], s) for s, v in views.items() if v["rank"] is not None)
        assert order[: len(ranked)] == [s for _, s in ranked]
        # the allocation chart plots the published weights, and the cash left over
        bars = browser.execute_script(
            "const d = document.getElementById('chart-alloc').data[0]; return [d.x, d.y];")
        assert dict(zip(bars[0][:-1], bars[1][:-1], strict=True)) == weights
        assert bars[0][-1] == "cash" and abs(bars[1][-1] - (1 - sum(weights.values()))) < 1e-12
        contrib = browser.execute_script(
            "const d = document.getElementById('chart-contrib').data[0]; return [d.y, d.x];")
        assert dict(zip(*contrib, strict=True)) == {
            s: v["contribution"] for s, v in views.items() if v["contribution"] or v["active"]}
        assert browser.find_element(By.ID, "plan").get_attribute("data-plan") == plan["plan_id"]
        # the world's equity curves are the API's points; its metrics table the API's numbers
        drawn = browser.execute_script(
            "return document.getElementById('chart-equity').data.map(t => [t.name, t.y])")
        assert drawn == [["realized", [p["equity"] for p in curves["realized"]]],
                         ["pro forma", [p["equity"] for p in curves["pro_forma"]]]]
        shown = browser.execute_script(
            "const o = {};"
            " for (const td of document.querySelectorAll('#world-metrics td[data-kind]'))"
            " o[td.dataset.kind + '.' + td.dataset.metric] = +td.dataset.v; return o;")
        want = {f"{k}.{m}": v for k in ("realized", "pro_forma")
                for m, v in metrics[k]["metrics"].items()}
        want |= {f"{k}.n_bars": metrics[k]["n_bars"] for k in ("realized", "pro_forma")}
        assert shown == want
        # the bars the pro forma stands on, as the API says (every active strategy has them)
        shared = browser.execute_script(
            "const e = document.getElementById('shared-bars');"
            " return [+e.dataset.v, +e.dataset.first, +e.dataset.last, e.textContent];")
        pf = metrics["pro_forma"]
        assert shared[:3] == [pf["shared_bars"], pf["first_shared"], pf["last_shared"]]
        assert pf["shared_bars"] == len(curves["pro_forma"]) > 0
        assert f"share {pf['shared_bars']} bars" in " ".join(shared[3].split())
        # the events panel lists the activation events so far, newest first
        seqs = browser.execute_script(
            "return [...document.querySelectorAll('#events li')].map(li => +li.dataset.seq)")
        assert seqs and seqs == sorted(seqs, reverse=True) and seqs[0] == plan["base_seq"]

        assert outside_requests(browser) == []
        assert console_errors(browser) == []
        assert screenshot(browser, tmp_path, "world").stat().st_size > 10_000
        leave(browser)


def test_a_metrics_update_appears_without_a_reload(browser, tmp_path):
    with world_service(tmp_path) as svc:
        populate(svc, "demo", 12)
        with svc.client() as c:
            before = {v["strategy_id"]: v for v in c.strategies("demo")}
        rejected = next(s for s, v in before.items() if v["status"] == "rejected")
        candidate = next(s for s, v in before.items() if v["status"] == "candidate")
        browser.get(f"{svc.url}/ui/worlds/demo")
        wait_for(browser, f"#activation tr[data-sid='{rejected}']")
        origin = browser.execute_script("window.__stay = 1; return performance.timeOrigin")
        n_events = len(browser.find_elements(By.CSS_SELECTOR, "#events li"))

        # a metrics-only change (still rejected): the bar count moves, nothing activates
        rng = np.random.default_rng(7)
        with svc.client("developer") as c:
            c.post_metrics("demo", [update("demo", rejected, 2, rng.normal(0, 0.01, 30), 120,
                                           0.1)])
        WebDriverWait(browser, 2).until(lambda d: cell(d, rejected, "n_bars") == str(WARMUP + 150))

        # an update that makes a candidate the best: it becomes active, an event arrives
        with svc.client("developer") as c:
            c.post_metrics("demo", [update("demo", candidate, 2, rng.normal(0, 0.01, 30), 120,
                                           9.0)])
            after = {v["strategy_id"]: v for v in c.strategies("demo")}
        assert after[candidate]["status"] == "active" and after[candidate]["rank"] == 1
        WebDriverWait(browser, 2).until(lambda d: cell(d, candidate, "status", "text") == "active")
        WebDriverWait(browser, 2).until(
            lambda d: len(d.find_elements(By.CSS_SELECTOR, "#events li")) > n_events)
        WebDriverWait(browser, 2).until(
            lambda d: _num(cell(d, candidate, "weight") or "") == after[candidate]["weight"])
        # the same page: no navigation happened
        assert browser.execute_script("return [window.__stay, performance.timeOrigin]") \
            == [1, origin]
        assert len(browser.execute_script(
            "return performance.getEntriesByType('navigation')")) == 1
        assert console_errors(browser) == []
        screenshot(browser, tmp_path, "live")
        leave(browser)


def test_the_worlds_page_lists_every_world_and_links_to_it(browser, tmp_path):
    with world_service(tmp_path) as svc:
        populate(svc, "alpha", 2)
        populate(svc, "beta", 2)
        browser.get(f"{svc.url}/ui")
        wait_for(browser, "#worlds tr[data-world]")
        rows = browser.find_elements(By.CSS_SELECTOR, "#worlds tbody tr")
        assert [r.get_attribute("data-world") for r in rows] == ["alpha", "beta"]
        rows[1].find_element(By.TAG_NAME, "a").click()
        wait_for(browser, "#activation tbody tr[data-sid]")
        assert browser.current_url == f"{svc.url}/ui/worlds/beta"
        assert outside_requests(browser) == [] and console_errors(browser) == []
        leave(browser)


def test_an_unknown_world_or_strategy_says_so_on_the_page(browser, tmp_path):
    with world_service(tmp_path) as svc:
        populate(svc, "demo", 2)
        browser.get(f"{svc.url}/ui/worlds/nowhere")
        assert "unknown world 'nowhere'" in wait_for(browser, "#page-error").text
        browser.get(f"{svc.url}/ui/worlds/demo/strategies/ghost")
        assert "'ghost' has not reported" in wait_for(browser, "#page-error").text
        assert outside_requests(browser) == []
        leave(browser)
