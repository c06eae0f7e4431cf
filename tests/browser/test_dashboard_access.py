"""Who sees what on the dashboard (tokens, roles, the audit panel), a world of 1,000
strategies, and the API docs pages, all offline in a real headless Chromium."""

from __future__ import annotations

import httpx
import numpy as np
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import console_errors, outside_requests, screenshot
from tests.browser.dashboard_world import leave, populate, update, wait_for, world_service


def _sign_in(driver, token: str) -> None:
    field = wait_for(driver, "#token-form #token")
    field.clear()
    field.send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()


def test_a_protected_server_asks_for_a_token_and_hides_the_audit_log_from_viewers(
        browser, tmp_path):
    with world_service(tmp_path, insecure=False) as svc:
        populate(svc, "demo", 6)
        browser.get(f"{svc.url}/ui/worlds/demo")
        wait_for(browser, "#token-form")
        assert browser.find_elements(By.ID, "activation") == []
        assert browser.execute_script("return sessionStorage.getItem('qmtl.token')") is None

        _sign_in(browser, "qmtl_not-a-token")
        assert wait_for(browser, "#token-error").text == "unknown token"

        _sign_in(browser, svc.tokens["viewer"])
        wait_for(browser, "#activation tbody tr[data-sid]")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#activation tbody tr")) == 6
        assert browser.execute_script("return sessionStorage.getItem('qmtl.token')") \
            == svc.tokens["viewer"]
        hidden = wait_for(browser, "#audit-hidden")
        assert "for operators" in hidden.text and "viewer" in hidden.text
        assert browser.find_elements(By.ID, "audit-table") == []
        assert "viewer (viewer)" in browser.find_element(By.ID, "who").text
        # the token stays for the tab: another page of the dashboard needs no new prompt
        browser.get(f"{svc.url}/ui/worlds/demo/strategies/s0001")
        wait_for(browser, "#strategy-status")
        assert browser.find_elements(By.ID, "token-form") == []
        assert outside_requests(browser) == [] and console_errors(browser) == []
        screenshot(browser, tmp_path, "viewer")
        leave(browser)


def test_an_operator_pages_through_the_audit_log(browser, tmp_path):
    with world_service(tmp_path, insecure=False) as svc:
        populate(svc, "demo", 3)
        rng = np.random.default_rng(1)
        with svc.client("operator") as c:  # populate's strategies are the operator's
            for seq in range(2, 62):  # 60 more audited writes: two pages of 50
                c.post_metrics("demo", [update("demo", "s0000", seq, rng.normal(0, 0.01, 2),
                                               120 + 2 * seq, 1.0)])
        with svc.client("operator") as c:
            expected = [row["id"] for row in c.audit("demo")]
        assert len(expected) > 60
        browser.get(f"{svc.url}/ui/worlds/demo")
        _sign_in(browser, svc.tokens["operator"])
        wait_for(browser, "#audit-table tbody tr")
        ids = lambda d: [int(x.get_attribute("data-id"))  # noqa: E731
                         for x in d.find_elements(By.CSS_SELECTOR, "#audit-table tbody tr")]
        # the metrics posts are hidden until asked for (test_dashboard_panels.py): ask
        browser.find_element(By.ID, "audit-metrics").click()
        WebDriverWait(browser, 5).until(lambda d: ids(d) == expected[:50])
        more = browser.find_element(By.ID, "audit-more")
        assert more.is_displayed()
        more.click()
        WebDriverWait(browser, 5).until(lambda d: len(ids(d)) == len(expected))
        assert ids(browser) == expected
        assert not browser.find_element(By.ID, "audit-more").is_displayed()
        assert browser.find_elements(By.ID, "audit-hidden") == []
        assert console_errors(browser) == []
        leave(browser)


def test_a_world_of_1000_strategies_is_paged_sorted_and_filtered(browser, tmp_path):
    with world_service(tmp_path) as svc:
        populate(svc, "big", 1000)
        with svc.client() as c:
            views = c.strategies("big")
        browser.get(f"{svc.url}/ui/worlds/big")
        wait_for(browser, "#activation tbody tr[data-sid]")
        rows = lambda d: d.execute_script(  # noqa: E731  (read at once: the table re-renders)
            "return [...document.querySelectorAll('#activation tbody tr')]"
            ".map(r => r.dataset.sid)")
        assert len(rows(browser)) == 50
        assert browser.find_element(By.ID, "pageinfo").text == "page 1 of 20"
        assert browser.find_element(By.ID, "count").text == "1000 strategies"

        # sort by score, highest first: the API's scores, in order
        head = browser.find_element(By.CSS_SELECTOR, "#activation th[data-key='score']")
        head.click()  # a number column sorts descending first
        assert head.get_attribute("aria-sort") == "descending"
        by_score = sorted((v for v in views if v["score"] is not None),
                          key=lambda v: (-v["score"], v["strategy_id"]))
        assert rows(browser) == [v["strategy_id"] for v in by_score[:50]]
        browser.find_element(By.ID, "next").click()
        assert rows(browser) == [v["strategy_id"] for v in by_score[50:100]]
        assert browser.find_element(By.ID, "pageinfo").text == "page 2 of 20"

        # sort by weight, then filter by a hint
        browser.find_element(By.CSS_SELECTOR, "#activation th[data-key='weight']").click()
        assert rows(browser)[:3] == sorted(
            (v["strategy_id"] for v in views if v["weight"] > 0),
            key=lambda s: (-next(v["weight"] for v in views if v["strategy_id"] == s), s))
        box = browser.find_element(By.ID, "filter")
        box.send_keys("s099")
        assert sorted(rows(browser)) == [f"s{i:04d}" for i in range(990, 1000)]
        assert browser.find_element(By.ID, "count").text == "10 of 1000 strategies"
        box.clear()
        box.send_keys("gate")
        gated = [v["strategy_id"] for v in views if any("gate" in h for h in v["hints"])]
        assert browser.find_element(By.ID, "count").text == f"{len(gated)} of 1000 strategies"
        assert console_errors(browser) == []
        screenshot(browser, tmp_path, "big")
        leave(browser)


def test_the_api_docs_render_offline(browser, tmp_path):
    with world_service(tmp_path) as svc:
        browser.get(f"{svc.url}/docs")
        WebDriverWait(browser, 15).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock"))
        paths = {e.text for e in browser.find_elements(
            By.CSS_SELECTOR, ".swagger-ui .opblock-summary-path")}
        spec = httpx.get(f"{svc.url}/openapi.json").json()["paths"]
        assert set(spec) <= {p.replace("\u200b", "") for p in paths}
        assert outside_requests(browser) == [] and console_errors(browser) == []
        screenshot(browser, tmp_path, "docs")

        browser.get(f"{svc.url}/redoc")
        WebDriverWait(browser, 30).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, "redoc .api-content h1"))
        assert "QMTL WorldService" in browser.find_element(By.CSS_SELECTOR, "redoc h1").text
        text = browser.find_element(By.TAG_NAME, "redoc").get_attribute("textContent")
        summaries = [o["summary"] for ops in spec.values() for o in ops.values()]
        assert all(s in text for s in summaries), [s for s in summaries if s not in text]
        # its bundle's logo came from the internet: served with an inline image instead
        assert outside_requests(browser) == [] and console_errors(browser) == []
        leave(browser)
