"""The dashboard shows a strategy's record per stage (the record its gates read marked) and
marks a strategy silent past ``max_silence``, in the activation table and on its page, and
the world's market in its header, in a real headless Chromium (issues 24 §1, §4; 26 §1)."""

from __future__ import annotations

import time

import numpy as np

from tests.browser.conftest import console_errors
from tests.browser.dashboard_world import cell, leave, update, wait_for, world_service
from world_api.domain.market import parse_market
from world_api.domain.policy import parse_policy
from world_api.service.store import WorldInfo, open_store

S = 10**9


def test_records_and_the_silent_mark(browser, tmp_path):
    rng = np.random.default_rng(5)
    # the silence happened before the service started (a stored state keeps it)
    store = open_store(str(tmp_path / "world.db"))
    store.create_world(WorldInfo(id="r"))
    engine = store.load_engine("r")
    engine.clock = lambda: 0
    changes = engine.set_policy(parse_policy("max_silence: 60\ntop_k: 3"), 2)
    backtest = update("r", "quiet", 1, rng.normal(0.001, 0.01, 80), 0, 1.2)
    changes += engine.ingest(backtest.model_copy(update={"mode": "backtest", "run_id": "bt"}))
    changes += engine.ingest(update("r", "quiet", 1, rng.normal(0.001, 0.01, 5), 80, 0.4))
    changes += engine.ingest(update("r", "loud", 1, rng.normal(0.001, 0.01, 60), 0, 1.0))
    changes += engine.tick(3_600 * S)  # neither has reported for an hour
    engine.clock = time.time_ns  # loud reports now, on the service's clock
    changes += engine.ingest(update("r", "loud", 2, rng.normal(0.001, 0.01, 5), 60, 1.0))
    store.commit("r", engine, changes, policy=engine.policy)
    store.put_market("r", parse_market("universe: {symbols: [A, B]}\nwindow: {last_bars: 90}"))
    store.close()
    with world_service(tmp_path) as svc:
        browser.get(f"{svc.url}/ui/worlds/r")
        wait_for(browser, "#activation tr[data-sid='quiet']")
        market = browser.find_element("css selector", "#market").text
        assert market == "v1 · 2 symbols · 1d · window: last 90 bars · close, 0 bps"
        assert cell(browser, "quiet", "status", "text") == "rejected silent"
        assert cell(browser, "loud", "status", "text") == "active"
        hint = cell(browser, "quiet", "hints", "text")
        assert hint.startswith("no update for ") and hint.endswith(" s > max_silence 60 s")
        browser.get(f"{svc.url}/ui/worlds/r/strategies/quiet")
        wait_for(browser, "#records tr[data-record='paper']")
        rows = browser.execute_script(
            "return [...document.querySelectorAll('#records tbody tr')].map(tr =>"
            " [tr.dataset.record, tr.className, tr.children[1].textContent.trim()]);"
        )
        # with min_bars 0 the most advanced record, paper, is the one read
        assert rows == [["backtest", "", "90"], ["paper", "read", "95"]]
        assert browser.find_element("css selector", "#strategy-silent").text == "silent"
        assert console_errors(browser) == []
        leave(browser)
