"""The live flow's order step on a real order store: gate, paper broker, replays."""

from __future__ import annotations

import logging

import numpy as np
from bytewax.testing import TestingSource, run_main

from connectors.live.order_store import open_order_store
from connectors.live.paper_broker import PaperBroker
from dataflows.compiler import StrategySpec
from dataflows.control import RunControl
from dataflows.gate import ActivationBook
from dataflows.live_flow import OrderContext, build_live_flow
from dataflows.replay import CallbackSink
from qmtl.core.expr import col

DAY = 86_400 * 10**9


def bars(close: list[float], open_: list[float]) -> dict[str, np.ndarray]:
    n = len(close)
    c = np.array(close, dtype=float)
    return {"ts": np.arange(1, n + 1) * DAY, "open": np.array(open_, dtype=float),
            "high": c + 1, "low": c - 1, "close": c, "volume": np.ones(n)}


def active_book(weight: float = 1.0) -> ActivationBook:
    book = ActivationBook("w")
    book.apply_event({"strategy_id": "s", "active": True, "weight": weight, "seq": 1}, now=0.0)
    return book


def run(store, book, data, control=None, broker=True, slippage_bps=0.0):
    """Run the live flow over ``data`` (one item); what the order step reported."""
    seen: list[tuple[str, list, list]] = []
    ctx = OrderContext(
        "w", 10_000.0, book, record=store.record, max_activation_age=60.0,
        make_broker=(lambda s: PaperBroker(store, "w", s, slippage_bps)) if broker else None,
        report=lambda s, o, f: seen.append((s, o, f)), clock=lambda: 1.0,
    )
    # long when the close is above 10, flat otherwise
    spec = StrategySpec("s", ["A"], col("close") > 10.0, 0.0, 1.0, 252.0)
    flow = build_live_flow(spec, TestingSource([("bar", ("A", data))]), control or RunControl(),
                           lambda _out: None, ctx, CallbackSink(lambda _r: None))
    run_main(flow)
    return [o for _, os, _ in seen for o in os], [f for _, _, fs in seen for f in fs]


def test_orders_follow_the_targets_and_fill_at_the_next_open(tmp_path):
    store = open_order_store(str(tmp_path / "orders.db"))
    data = bars([11, 12, 9, 13], open_=[10.5, 11.5, 12.5, 8.5])
    orders, fills = run(store, active_book(0.5), data)
    # long on bar 1 (weight 1 x world weight 0.5), flat on bar 3, long again on bar 4
    assert [(o.ts // DAY, o.target_weight) for o in orders] == [(1, 0.5), (3, 0.0), (4, 0.5)]
    assert [o.target_qty for o in orders] == [0.5 * 10_000 / 11, 0.0, 0.5 * 10_000 / 13]
    # each fills at the next bar's open; the last waits for a bar that has not come
    assert [(f.ts // DAY, f.price, f.qty) for f in fills] == [
        (2, 11.5, 0.5 * 10_000 / 11), (4, 8.5, -0.5 * 10_000 / 11)]
    assert store.positions("w", "s") == {"A": 0.0}


def test_a_replay_of_the_same_bars_reports_nothing_new(tmp_path):
    store = open_order_store(str(tmp_path / "orders.db"))
    data = bars([11, 12, 9, 13], open_=[10.5, 11.5, 12.5, 8.5])
    first = run(store, active_book(), data)
    again = run(store, active_book(), data)
    assert len(first[0]) == 3 and len(first[1]) == 2
    assert again == ([], [])
    assert len(store.orders("w", "s")) == 3 and len(store.fills("w", "s")) == 2


def test_without_a_broker_orders_are_recorded_once(tmp_path):
    store = open_order_store(str(tmp_path / "orders.db"))
    data = bars([11, 12, 9, 13], open_=[10.5, 11.5, 12.5, 8.5])
    assert len(run(store, active_book(), data, broker=False)[0]) == 3
    assert run(store, active_book(), data, broker=False) == ([], [])
    assert store.fills("w") == [] and len(store.orders("w", "s")) == 3


def test_no_activation_no_orders_and_the_reason_is_logged(tmp_path, caplog, monkeypatch):
    # the CLI, run in process by other tests, stops "qmtl" records at its own handler
    monkeypatch.setattr(logging.getLogger("qmtl"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="qmtl.live")
    store = open_order_store(str(tmp_path / "orders.db"))
    book = ActivationBook("w")
    book.confirm(now=0.0)
    assert run(store, book, bars([11, 12], open_=[11, 12])) == ([], [])
    assert "no activation known for 's' in world 'w'" in caplog.text


def test_a_failing_broker_stops_the_run_with_its_error(tmp_path):
    store = open_order_store(str(tmp_path / "orders.db"))
    control = RunControl()
    got = run(store, active_book(), bars([11, 12], open_=[11, 12]), control, slippage_bps=-1)
    assert got == ([], []) and store.orders("w") == []
    assert isinstance(control.error, ValueError) and "must be >= 0 bp" in str(control.error)
