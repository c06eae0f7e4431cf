"""The order store and the paper broker, on SQLite and on the machine's PostgreSQL."""

from __future__ import annotations

import uuid

import pytest

from connectors.live.orders import PaperBroker, open_order_store
from qmtl.core.contracts import MetricsUpdate, OrderIntent
from tests.world_api.conftest import PG_URL, _ensure_pg


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = open_order_store(str(tmp_path / "orders.db"))
        yield s
        s.close()
        return
    why = _ensure_pg()
    if why:
        pytest.skip(why)
    import psycopg

    schema = f"qmtl_orders_{uuid.uuid4().hex[:10]}"
    s = open_order_store(f"{PG_URL}?schema={schema}")
    yield s
    s.close()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def order(symbol="A", ts=1, qty=10.0, weight=0.5, strategy="s"):
    return OrderIntent(world="w", strategy_id=strategy, symbol=symbol, ts=ts,
                       target_weight=weight, target_qty=qty, reason="rebalance")


def test_an_order_key_is_recorded_once(store):
    assert store.record([order(ts=1), order(ts=2)]) == [order(ts=1), order(ts=2)]
    assert store.record([order(ts=2, qty=99.0), order(ts=3)]) == [order(ts=3)]  # 2 is taken
    assert [o.ts for o in store.orders("w")] == [1, 2, 3]
    assert store.orders("w")[1].target_qty == 10.0  # the first decision stands
    assert [key for _, key, _ in store.unpublished("orders")] == ["w/s/A/1", "w/s/A/2",
                                                                  "w/s/A/3"]
    first = store.unpublished("orders")[0][1]
    store.mark_published_keys("orders", [first])
    assert len(store.unpublished("orders")) == 2


def test_paper_fills_at_next_open_with_slippage_and_fee_by_hand(store):
    b = PaperBroker(store, "w", "s", slippage_bps=5.0, fee_bps=2.0)
    b.submit([order("A", ts=1, qty=100.0)])
    assert b.on_bar("A", 1, open_=50.0) == []  # the deciding bar itself does not fill it
    assert b.on_bar("B", 2, open_=50.0) == []  # another symbol's bar neither
    [fill] = b.on_bar("A", 2, open_=50.0)
    first = fill
    assert fill.qty == 100.0 and fill.price == pytest.approx(50.025)  # buys pay up 5 bp
    assert fill.fee == pytest.approx(100 * 50.025 * 2e-4)
    assert fill.order_id == "w/s/A/1" and fill.ts == 2
    b.submit([order("A", ts=3, qty=40.0)])
    [fill] = b.on_bar("A", 4, open_=60.0)
    assert fill.qty == -60.0 and fill.price == pytest.approx(60 * (1 - 5e-4))  # sells get less
    assert b.position("A") == 40.0 and store.positions("w", "s") == {}
    assert b.flush() == ([], [first, fill])  # stored in one transaction per flush
    assert store.positions("w", "s") == {"A": 40.0}
    assert b.flush() == ([], [])


def test_a_restarted_broker_knows_what_it_holds_and_fills_nothing_twice(store):
    b = PaperBroker(store, "w", "s")
    b.submit([order("A", ts=1, qty=10.0), order("B", ts=1, qty=5.0)])
    b.on_bar("A", 2, open_=10.0)
    b.flush()
    again = PaperBroker(store, "w", "s")  # a new process, the same store
    assert again.position("A") == 10.0 and again.position("B") == 0.0
    assert again.submit([order("A", ts=1, qty=10.0)]) == []  # replayed decision: nothing new
    assert again.on_bar("A", 2, open_=10.0) == []  # replayed bar: filled already
    [fill] = again.on_bar("B", 2, open_=20.0)  # the open order survived the restart
    assert (fill.symbol, fill.qty) == ("B", 5.0)
    assert again.flush() == ([], [fill])
    assert len(store.fills("w")) == 2
    # a replayed stretch (the old broker's view) finds every key taken: nothing new
    b.accept([order("B", ts=1, qty=5.0)])
    b.on_bar("B", 2, open_=20.0)
    assert b.flush() == ([order("B", ts=1, qty=5.0)][:0], [])
    assert len(store.fills("w")) == 2 and store.positions("w", "s") == {"A": 10.0, "B": 5.0}


def test_metric_updates_queue_once_in_order(store):
    def upd(seq):
        return MetricsUpdate(world="w", strategy_id="s", run_id="r", seq=seq, mode="paper",
                             as_of=seq, n_bars=seq, metrics={"sharpe": 1.0})

    assert store.queue_update(upd(5)) and store.queue_update(upd(9))
    assert not store.queue_update(upd(9)) and not store.queue_update(upd(7))  # replayed
    rows = store.unsent_updates("w")
    assert [MetricsUpdate.model_validate_json(b).seq for _, b in rows] == [5, 9]
    store.mark_sent([rows[0][0]])
    assert [i for i, _ in store.unsent_updates("w")] == [rows[1][0]]
    assert store.last_update("w", "s", "r").seq == 9  # sent or not
    assert store.last_update("w", "s", "other run") is None


def test_a_resumed_report_takes_metrics_the_store_has_and_metrics_json_lacks(store, tmp_path):
    # killed after an update was queued but before metrics.json was rewritten
    from qmtl.live import RunReport

    head = {"world": "w", "strategy": "s", "run_id": "r", "mode": "paper"}
    last = MetricsUpdate(world="w", strategy_id="s", run_id="r", seq=12, mode="paper",
                         as_of=12, n_bars=12, metrics={"sharpe": 1.5})
    store.queue_update(last)
    got = store.last_update("w", "s", "r")
    report = RunReport(head, ["A"], tmp_path / "out", None, resume=True, last_update=got)
    assert report.n_bars == 12 and report.metrics == {"sharpe": 1.5}
    # a metrics.json ahead of the store (its updates were trimmed, say) wins
    (tmp_path / "out" / "metrics.json").write_text('{"n_bars": 20, "metrics": {"sharpe": 2.0}}')
    report = RunReport(head, ["A"], tmp_path / "out", None, resume=True, last_update=got)
    assert report.n_bars == 20 and report.metrics == {"sharpe": 2.0}
    # a fresh run ignores both
    fresh = RunReport(head, ["A"], tmp_path / "new", None, resume=False, last_update=got)
    assert fresh.n_bars == 0 and fresh.metrics == {}
