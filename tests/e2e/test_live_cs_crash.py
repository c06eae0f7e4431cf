"""kill -9 of a live cross-sectional run (a momentum book over three symbols on unequal
calendars and a context symbol), restarted with the same recovery directory, ends where an
uninterrupted run ends — the same per-bar rows, metrics, orders, fills and positions, the
world sees every bar's return once — and both equal the backtest of the same bars."""

from __future__ import annotations

import random
from pathlib import Path

import httpx
import pytest

from qmtl.runner import backtest
from tests.e2e.live_helpers import (
    Live,
    activate,
    crash_and_resume,
    max_abs_diff,
    outcome,
    topic_name,
)
from tests.e2e.test_live_cross_section import Book, unequal
from tests.world_api.conftest import serve
from world_api.service.app import create_app
from world_api.service.store import open_store

STRATEGY = """
from tests.e2e.test_live_cross_section import Book as _Book


class Book(_Book):  # the cross-sectional live test's strategy, in a file for `qmtl run`
    pass
"""
N = 200  # bar times
DATA = unequal(N)
TOTAL = sum(len(b["ts"]) for b in DATA.values())


def run_args(tmp: Path, name: str, brokers: str, topic: str, url: str) -> list[str]:
    return [
        "run", "--mode", "live", str(tmp / "book.py"), "--brokers", brokers, "--topic", topic,
        "--world", name, "--url", url, "--paper", "--warmup", "0",
        "--max-bars", str(TOTAL), "--recovery-dir", str(tmp / name / "recovery"),
        "--snapshot-interval", "0.2", "--out", str(tmp / name / "out"),
        "--orders-store", str(tmp / name / "orders.db"), "--data", str(tmp / "no-catalog"),
    ]


def check_same(a: dict, b: dict, n_bars: int) -> None:
    ma, mb = a["metrics"], b["metrics"]
    assert ma["n_bars"] == mb["n_bars"] == n_bars
    for k, v in ma["metrics"].items():
        assert mb["metrics"][k] == pytest.approx(v, rel=1e-12, abs=1e-15, nan_ok=True), k
    ta, tb = a["bars"], b["bars"]
    assert ta.num_rows == tb.num_rows  # no row lost, none written twice
    assert ta.column("ts").to_pylist() == tb.column("ts").to_pylist()
    assert ta.column("symbol").to_pylist() == tb.column("symbol").to_pylist()
    for c in ("weight", "return", "equity"):
        assert max_abs_diff(ta.column(c).to_numpy(), tb.column(c).to_numpy()) <= 1e-12, c
    assert len(a["orders"]) == len(b["orders"]) > 10
    assert any(o[2] < 0 for o in a["orders"])  # short targets among them
    for x, y in zip(a["orders"], b["orders"], strict=True):
        assert x[:2] == y[:2] and x[2:] == pytest.approx(y[2:], rel=1e-12)
    assert len(a["fills"]) == len(b["fills"])
    for x, y in zip(a["fills"], b["fills"], strict=True):
        assert x[:2] == y[:2] and x[2:] == pytest.approx(y[2:], rel=1e-12)
    assert len(a["positions"]) == 3 and a["positions"].keys() == b["positions"].keys()
    for k, v in a["positions"].items():
        assert b["positions"][k] == pytest.approx(v, rel=1e-12)


@pytest.mark.slow  # the default subset kills the single-symbol run (test_live_crash.py)
def test_kill_9_of_a_cross_sectional_live_run_loses_and_repeats_nothing(kafka, tmp_path):
    (tmp_path / "book.py").write_text(STRATEGY)
    topic = topic_name()
    db = str(tmp_path / "world.db")
    with serve(create_app(db, insecure_dev=True)) as url:
        for name in ("ref", "crash"):
            assert httpx.post(f"{url}/worlds", json={"id": name}).status_code == 201
            activate(url, name, "Book")
        # bars arrive in chunks while the crashing run works and is killed
        done = crash_and_resume(run_args(tmp_path, "crash", kafka.brokers, topic, url),
                                data=DATA, brokers=kafka.brokers, topic=topic, url=url,
                                world="crash", strategy_id="Book", kills=3,
                                rng=random.Random(13))
        ref = Live(run_args(tmp_path, "ref", kafka.brokers, topic, url))
        assert ref.wait() == 0, ref.output()
    # every kill hit a running flow, and restarts resumed from snapshots part-way, not from
    # the start of the topic
    assert len(done) == 3 and any(0 < d < TOTAL for d in done), done
    a, b = outcome(tmp_path, "ref", "Book"), outcome(tmp_path, "crash", "Book")
    bt = backtest(Book, data=DATA)
    check_same(a, b, len(bt.ts))
    # and both are the backtest of the same bars
    assert a["bars"].column("symbol").to_pylist() == bt.bars.column("symbol").to_pylist()
    assert max_abs_diff(a["bars"].column("weight").to_numpy(),
                        bt.bars.column("weight").to_numpy()) <= 1e-12
    store = open_store(db)
    rings = {n: list(store.load_engine(n).strategies["Book"].returns) for n in ("ref", "crash")}
    assert len(rings["crash"]) == len(rings["ref"]) == len(bt.ts)
    assert max_abs_diff(rings["crash"], bt.returns) <= 1e-12
