"""The order store, on SQLite and on the machine's PostgreSQL: idempotent orders, the outbox,
queued MetricsUpdates, and a store made before migrations upgraded in place."""

from __future__ import annotations

from qmtl.core.contracts import MetricsUpdate, OrderIntent


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
