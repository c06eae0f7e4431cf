"""The world page's Runners card, in a real headless Chromium: each runner that heartbeats
(``qmtl world run``) with whether it is alive, the strategies it holds, their lag and last
bar, and the strategies it refused with why; a world without runners says so."""

from __future__ import annotations

from selenium.webdriver.common.by import By

from tests.browser.conftest import console_errors
from tests.browser.dashboard_world import leave, populate, wait_for, world_service
from world_api import runner_client as rc


def test_the_runners_card(browser, tmp_path):
    with world_service(tmp_path) as svc:
        populate(svc, "demo", 3)
        browser.get(f"{svc.url}/ui/worlds/demo")
        note = wait_for(browser, "p#runners")
        assert "No runner" in note.text
        report = {
            "ttl": 60.0,
            "strategies": {"s0000": {"lag_s": 2.5, "last_bar": 86_400 * 10**9},
                           "s0001": {"lag_s": 7.25, "last_bar": 2 * 86_400 * 10**9}},
            "refused": {"s0002": "strategy s0002 changed since it was evaluated: graph id a != b"},
        }  # fmt: skip
        with svc.client() as c:
            held = rc.heartbeat(c, "demo", "r1", ["s0000", "s0001"], 60.0, report)
        assert held == ["s0000", "s0001"]
        browser.get(f"{svc.url}/ui/worlds/demo")
        row = wait_for(browser, "#runners tr[data-runner='r1']")
        cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        assert cells[0] == "r1" and cells[1] == "yes"
        assert cells[2] == "s0000, s0001" and cells[3] == "7.3 s"
        assert cells[4].startswith("1970-01-03")
        assert "s0002: strategy s0002 changed since it was evaluated" in cells[5]
        assert console_errors(browser) == []
        leave(browser)
