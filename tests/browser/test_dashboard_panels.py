"""What the world page's panels say when there is nothing to say: the audit log hides the
metrics posts until asked (they buried the operators' actions), a world's exposure and
turnover (not computed) and the metrics of a curve of 0 bars show "—", not zeros, and the
top bar's badge does not say "offline" on the worlds list, which has no live link."""

from __future__ import annotations

import httpx
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import console_errors
from tests.browser.dashboard_world import leave, populate, wait_for, world_service


def _audit_actions(driver) -> list[str]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#audit-table tbody tr')]"
        ".map(r => r.children[3].textContent)")


def test_empty_numbers_audit_noise_and_the_badge(browser, tmp_path):
    with world_service(tmp_path) as svc:
        populate(svc, "demo", 120)  # 2 metrics posts, no live bars: realized has 0
        metrics = httpx.get(f"{svc.url}/worlds/demo/metrics").json()
        assert metrics["realized"]["n_bars"] == 0
        logged = [r["action"] for r in httpx.get(f"{svc.url}/worlds/demo/audit").json()]
        assert logged.count("post_metrics") == 2

        browser.get(f"{svc.url}/ui")
        wait_for(browser, "#worlds tr[data-world]")
        badge = browser.find_element(By.ID, "live")
        assert not badge.is_displayed() and badge.text == ""

        browser.get(f"{svc.url}/ui/worlds/demo")
        wait_for(browser, "#audit-table tbody tr")
        WebDriverWait(browser, 15).until(
            lambda d: d.find_element(By.ID, "live").text == "live")
        shown = browser.execute_script(
            "const o = {}; for (const td of document.querySelectorAll("
            "'#world-metrics td[data-kind]')) o[td.dataset.kind + '.' + td.dataset.metric]"
            " = td.textContent.trim(); return o;")
        realized = {k: v for k, v in shown.items() if k.startswith("realized.")}
        assert realized.pop("realized.n_bars") == "0"
        assert realized and set(realized.values()) == {"—"}, realized
        for kind in ("realized", "pro_forma"):
            assert shown[f"{kind}.exposure"] == "—" and shown[f"{kind}.turnover"] == "—"
        assert shown["pro_forma.sharpe"] not in ("—", "0.0000")  # a real number

        actions = _audit_actions(browser)
        assert "post_metrics" not in actions and "create_world" in actions, actions
        browser.find_element(By.ID, "audit-metrics").click()
        WebDriverWait(browser, 10).until(lambda d: "post_metrics" in _audit_actions(d))
        assert _audit_actions(browser).count("post_metrics") == 2
        assert console_errors(browser) == []
        leave(browser)
