"""A world service with a populated world for the dashboard's page tests: a real uvicorn
server (in a thread) over a SQLite store, and metrics posted through the HTTP client."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from qmtl.core.contracts import MetricsUpdate
from tests.world_api.conftest import serve
from world_api.client import WorldServiceClient
from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.store import open_store

POLICY = """
gates: {sharpe: ">= 0.5"}
top_k: 3
allocation: {method: equal}
"""
DAY = 86_400 * 10**9
WARMUP = 10
"""Bars each run had before its first return: no update carries a run's whole history, so
the world does not re-check the made-up metrics these updates claim (consistency.py)."""
T0 = 1_700_006_400 * 10**9


@dataclass
class Service:
    url: str
    store: str
    tokens: dict[str, str]

    def client(self, role: str = "operator") -> WorldServiceClient:
        return WorldServiceClient(self.url, token=self.tokens.get(role))


def returns_field(start: int, returns: np.ndarray) -> list[tuple[int, float]]:
    """The ``returns`` of a MetricsUpdate: ``(ts, r)`` pairs, one bar a day from ``T0``."""
    return [(T0 + (start + i) * DAY, float(r)) for i, r in enumerate(returns)]


def update(world: str, sid: str, seq: int, returns: np.ndarray, start: int,
           sharpe: float) -> MetricsUpdate:
    return MetricsUpdate(
        world=world, strategy_id=sid, run_id="r", seq=seq, mode="paper",
        as_of=T0 + (start + len(returns)) * DAY, n_bars=WARMUP + start + len(returns),
        metrics={"sharpe": sharpe, "max_drawdown": 0.1, "total_return": float(returns.sum())},
        returns=returns_field(start, returns),
    )


def populate(svc: Service, world: str, n: int, bars: int = 120, seed: int = 0,
             live: int = 0) -> None:
    """Create ``world`` with ``n`` strategies, each with ``bars`` streamed returns, then
    ``live`` more each, streamed after the world chose (they make its realized return)."""
    rng = np.random.default_rng(seed)
    with svc.client() as c:
        c.create_world(world, name=f"{world} world")
        c.put_policy(world, POLICY)
        updates = [update(world, f"s{i:04d}", 1, rng.normal(0.001, 0.01, bars), 0,
                          float(np.round(rng.normal(1.0, 0.6), 6))) for i in range(n)]
        for k in range(0, n, 100):  # a request body stays under the service's 1 MiB
            c.post_metrics(world, updates[k:k + 100])
        if live:
            c.post_metrics(world, [update(world, u.strategy_id, 2,
                                          rng.normal(0.001, 0.01, live), bars,
                                          u.metrics["sharpe"]) for u in updates])


@contextlib.contextmanager
def world_service(tmp_path: Path, *, insecure: bool = True) -> Iterator[Service]:
    """A running world service; tokens for each role when not insecure."""
    store = str(tmp_path / "world.db")
    backend = open_store(store)
    tokens = {} if insecure else {r: create_token(backend, r, r)
                                  for r in ("viewer", "developer", "operator")}
    with serve(create_app(backend, insecure_dev=insecure)) as url:
        yield Service(url, store, tokens)


def leave(driver) -> None:
    """Close the page's streams (so the server can stop at once)."""
    driver.get("about:blank")


def wait_for(driver, css: str, timeout: float = 15.0):
    return WebDriverWait(driver, timeout).until(
        lambda d: d.find_element(By.CSS_SELECTOR, css))


def plotted(driver) -> int:
    """How many plotly charts on the page hold at least one drawn trace."""
    return driver.execute_script(
        "return [...document.querySelectorAll('.js-plotly-plot')]"
        ".filter(p => p.querySelector('svg.main-svg g.trace')).length")


def cell(driver, sid: str, col: str, attr: str = "data-v") -> str | None:
    """A cell of the activation table (its ``data-v``, or ``attr``; ``text`` for its text),
    read in one script: the table re-renders while a test waits, so an element found first
    may be gone when its attribute is read."""
    return driver.execute_script(
        "const td = document.querySelector(`#activation tr[data-sid='${arguments[0]}']"
        " td[data-col='${arguments[1]}']`);"
        "return td ? (arguments[2] === 'text' ? td.textContent.trim()"
        " : td.getAttribute(arguments[2])) : null;", sid, col, attr)
