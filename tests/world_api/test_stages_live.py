"""The live side of stages: the gate's book reads stages from snapshots and events (and
streams without them still work), and the order step sends orders where the stage says."""

from __future__ import annotations

import numpy as np
from bytewax.testing import TestingSource, run_main

from connectors.live.order_store import open_order_store
from connectors.live.paper_broker import PaperBroker
from dataflows.compiler import StrategySpec
from dataflows.control import RunControl
from dataflows.gate import ActivationBook
from dataflows.live_flow import OrderContext, build_live_flow
from dataflows.replay import CallbackSink
from qmtl.core.contracts import ActivationEvent
from qmtl.core.expr import col
from tests.dataflows.test_live_flow import DAY, bars


def event(seq: int, stage: str | None = None) -> dict:
    return ActivationEvent(world="w", seq=seq, ts=0, strategy_id="s", active=True, weight=1.0,
                           reason="x", policy_version=1, stage=stage).model_dump()


def test_the_book_reads_stages_and_old_streams_still_work():
    book = ActivationBook("w")
    # an event of an older world (no stage key) and a snapshot without "stages"
    book.apply_event({"strategy_id": "s", "active": True, "weight": 1.0, "seq": 1}, now=0.0)
    book.load_snapshot({"seq": 1, "strategies": [
        {"strategy_id": "s", "active": True, "weight": 1.0}]}, now=0.0)
    assert book.stage("s") is None and book.get("s").active
    book.apply_event(event(2), now=0.0)  # stage None: an activation event
    assert book.stage("s") is None
    book.apply_event(event(3, "paper"), now=0.0)
    assert (book.stage("s"), book.stage("other"), book.seq) == ("paper", "backtest", 3)
    book.apply_event(event(3, "live"), now=0.0)  # a repeat of seq 3: ignored
    assert book.stage("s") == "paper"
    book.load_snapshot({"seq": 9, "stages": True, "strategies": [
        {"strategy_id": "s", "active": True, "weight": 1.0, "stage": "live"},
        {"strategy_id": "t", "active": False, "weight": 0.0, "stage": None}]}, now=0.0)
    assert (book.stage("s"), book.stage("t")) == ("live", "backtest")


def run(tmp_path, stage: str | None, paper_run: bool = False, then: str | None = None):
    """The order step over 4 bars for strategy ``s`` in ``stage``: (reported orders,
    reported fills, published orders, the store)."""
    store = open_order_store(str(tmp_path / f"o-{stage}-{paper_run}.db"))
    book = ActivationBook("w")
    book.apply_event(event(1, stage), now=0.0)
    seen: list[tuple[list, list]] = []
    published: list = []
    ctx = OrderContext(
        "w", 10_000.0, book, record=store.record, max_activation_age=60.0,
        make_broker=(lambda s: PaperBroker(store, "w", s)) if paper_run else None,
        make_paper=None if paper_run else (lambda s: PaperBroker(store, "w", s, quiet=True)),
        publish=lambda o, f: published.append((o, f)),
        report=lambda s, o, f: (seen.append((o, f)),
                                then and book.apply_event(event(2, then), now=0.0)),
        clock=lambda: 1.0,
    )
    spec = StrategySpec("s", ["A"], col("close") > 10.0, 0.0, 1.0, 252.0)
    data = bars([11, 12, 9, 13], open_=[10.5, 11.5, 12.5, 8.5])
    items = [("bar", ("A", data))]
    if then:
        more = bars([14, 15, 9, 16], open_=[13.5, 14.5, 15.5, 8.5])
        more["ts"] = more["ts"] + 4 * DAY
        items.append(("bar", ("A", more)))
    flow = build_live_flow(spec, TestingSource(items), RunControl(),
                           lambda _out: None, ctx, CallbackSink(lambda _r: None))
    run_main(flow)
    orders = [o for os, _ in seen for o in os]
    fills = [f for _, fs in seen for f in fs]
    return orders, fills, [o for os, _ in published for o in os], store


def test_stage_paper_fills_on_paper_and_publishes_nothing(tmp_path):
    orders, fills, published, store = run(tmp_path, "paper")
    assert [o.ts // DAY for o in orders] == [1, 3, 4] and len(fills) == 2
    assert published == []
    # stored as published: the relay's sweep never sends them to the orders topic
    assert store.unpublished("orders") == [] and store.unpublished("fills") == []


def test_stage_live_sends_real_orders_and_fills_nothing(tmp_path):
    orders, fills, published, store = run(tmp_path, "live")
    assert [o.ts // DAY for o in orders] == [1, 3, 4] and fills == []
    assert published == orders
    assert len(store.unpublished("orders")) == 3  # the relay sends what it has not acked


def test_stage_backtest_holds(tmp_path, caplog):
    orders, fills, published, _ = run(tmp_path, "backtest")
    assert orders == fills == published == []
    assert any("is in stage backtest in world 'w': orders held" in r.getMessage()
               for r in caplog.records)


def test_a_paper_run_never_sends_real_orders_even_in_live(tmp_path):
    orders, fills, published, _ = run(tmp_path, "live", paper_run=True)
    assert len(orders) == 3 and len(fills) == 2  # filled on paper
    assert published == orders  # its own broker's orders, published as before stages


def test_a_world_without_stages_leaves_the_run_as_its_options_say(tmp_path):
    orders, fills, published, _ = run(tmp_path, None)
    assert len(orders) == 3 and fills == [] and published == orders


def test_a_switch_mid_run_sends_every_target_to_the_new_venue(tmp_path):
    """paper for bars 1-4, live from bar 5: bar 5's target (long, as on bar 4) goes to the
    orders topic although it did not change, and the paper order of bar 4 still fills at bar
    5's open on paper."""
    orders, fills, published, store = run(tmp_path, "paper", then="live")
    assert [(o.ts // DAY, o.target_weight) for o in orders] == [
        (1, 1.0), (3, 0.0), (4, 1.0), (5, 1.0), (7, 0.0), (8, 1.0)]
    assert [o.ts // DAY for o in published] == [5, 7, 8]
    assert [(f.ts // DAY, f.price) for f in fills] == [(2, 11.5), (4, 8.5), (5, 13.5)]
    assert np.array([k for _, k, _ in store.unpublished("orders")]).tolist() == [
        f"w/s/A/{d * DAY}" for d in (5, 7, 8)]
