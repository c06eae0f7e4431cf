"""The order store, on SQLite and on the machine's PostgreSQL: idempotent orders, the outbox,
queued MetricsUpdates, and a store made before migrations upgraded in place."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from connectors.live import order_tables
from connectors.live.order_store import MIGRATIONS, VERSION_TABLE, OrderStore
from qmtl.core.contracts import Fill, MetricsUpdate, OrderIntent
from qmtl.core.db import head_revision
from tests.db_versions import drop_schema, same_kind_of_float, table_shapes, write_v0


def order(symbol="A", ts=1, qty=10.0, weight=0.5, reason="rebalance", strategy="s"):
    return OrderIntent(world="w", strategy_id=strategy, symbol=symbol, ts=ts,
                       target_weight=weight, target_qty=qty, reason=reason)


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


def test_an_update_queued_before_returns_had_times_is_read_without_them(store):
    """A live run queued before the contract change resumes: its last update's metrics and
    bar count are read; its bare returns (no times) are left out."""
    old = ('{"world": "w", "strategy_id": "s", "run_id": "r", "seq": 3, "mode": "paper", '
           '"as_of": 3, "n_bars": 3, "metrics": {"sharpe": 1.5}, "returns": [0.1, 0.2]}')
    with store.transaction() as conn:
        conn.execute(order_tables.metric_updates.insert().values(
            world="w", strategy_id="s", run_id="r", seq=3, body=old))
    got = store.last_update("w", "s", "r")
    assert (got.n_bars, got.metrics, got.returns) == (3, {"sharpe": 1.5}, [])


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


# The DDL of connectors/live/orders.py before it had migrations (commit 77c3deb), verbatim.
V0_DDL = [
    """CREATE TABLE IF NOT EXISTS orders (
        id {serial}, key TEXT NOT NULL UNIQUE, world TEXT NOT NULL,
        strategy_id TEXT NOT NULL, symbol TEXT NOT NULL, ts BIGINT NOT NULL,
        target_weight DOUBLE PRECISION NOT NULL, target_qty DOUBLE PRECISION NOT NULL,
        reason TEXT NOT NULL, created BIGINT NOT NULL,
        filled INTEGER NOT NULL DEFAULT 0, published INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS fills (
        id {serial}, order_key TEXT NOT NULL UNIQUE, world TEXT NOT NULL,
        strategy_id TEXT NOT NULL, symbol TEXT NOT NULL, ts BIGINT NOT NULL,
        qty DOUBLE PRECISION NOT NULL, price DOUBLE PRECISION NOT NULL,
        fee DOUBLE PRECISION NOT NULL, created BIGINT NOT NULL DEFAULT 0,
        published INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS positions (
        world TEXT NOT NULL, strategy_id TEXT NOT NULL, symbol TEXT NOT NULL,
        qty DOUBLE PRECISION NOT NULL, PRIMARY KEY (world, strategy_id, symbol))""",
    """CREATE TABLE IF NOT EXISTS metric_updates (
        id {serial}, world TEXT NOT NULL, strategy_id TEXT NOT NULL, run_id TEXT NOT NULL,
        seq BIGINT NOT NULL, body TEXT NOT NULL, sent INTEGER NOT NULL DEFAULT 0,
        UNIQUE (world, strategy_id, run_id, seq))""",
]
ORDER_SQL = ("INSERT INTO orders (key, world, strategy_id, symbol, ts, target_weight, target_qty, "
             "reason, created, filled, published) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
UPDATE_SQL = ("INSERT INTO metric_updates (world, strategy_id, run_id, seq, body, sent) "
              "VALUES (?, ?, ?, ?, ?, ?)")


def upd(seq: int) -> MetricsUpdate:
    return MetricsUpdate(world="w", strategy_id="s", run_id="r", seq=seq, mode="paper",
                         as_of=seq, n_bars=seq, metrics={"sharpe": seq / 10})


def test_a_version_0_order_store_upgrades_in_place_and_keeps_every_row(order_store_url):
    write_v0(order_store_url, V0_DDL, [
        (ORDER_SQL, ["w/s/A/1", "w", "s", "A", 1, 0.5, 50.0, "rebalance", 7, 1, 1]),
        (ORDER_SQL, ["w/s/B/1", "w", "s", "B", 1, 0.25, 1 / 3, "in", 8, 0, 0]),
        ("INSERT INTO fills (order_key, world, strategy_id, symbol, ts, qty, price, fee, "
         "created) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
         ["w/s/A/1", "w", "s", "A", 2, 50.0, 10.01, 0.05005, 9]),
        ("INSERT INTO positions (world, strategy_id, symbol, qty) VALUES (?, ?, ?, ?)",
         ["w", "s", "A", 50.0]),
        (UPDATE_SQL, ["w", "s", "r", 5, upd(5).model_dump_json(), 1]),
        (UPDATE_SQL, ["w", "s", "r", 9, upd(9).model_dump_json(), 0]),
    ])
    store = OrderStore(order_store_url)
    try:
        assert store.db.revision(VERSION_TABLE) == head_revision(MIGRATIONS) == "0001"
        assert store.orders("w") == [order("A", 1, 50.0), order("B", 1, 1 / 3, 0.25, "in")]
        assert store.orders("w", "s", open_only=True) == [order("B", 1, 1 / 3, 0.25, "in")]
        assert store.fills("w") == [Fill(order_id="w/s/A/1", symbol="A", ts=2, qty=50.0,
                                         price=10.01, fee=0.05005)]
        assert store.positions("w", "s") == {"A": 50.0}
        assert [k for _, k, _ in store.unpublished("orders")] == ["w/s/B/1"]
        assert [k for _, k, _ in store.unpublished("fills")] == ["w/s/A/1"]  # never marked
        assert [b for _, b in store.unsent_updates("w")] == [upd(9).model_dump_json()]
        assert store.last_update("w", "s", "r") == upd(9)
        assert not store.queue_update(upd(9))  # the old rows still answer for their keys
        assert store.record([order("A", 1, 99.0), order("A", 2)]) == [order("A", 2)]
        ids = [i for i, _, _ in store.unpublished("orders")]
        assert ids == sorted(ids) and ids[-1] > 2  # new ids go on after the old ones
    finally:
        store.close()


def test_a_fresh_order_store_has_the_version_0_tables(order_store_url, tmp_path):
    v0_url = (str(tmp_path / "v0.db") if not order_store_url.startswith("postgresql")
              else order_store_url + "_v0")
    write_v0(v0_url, V0_DDL, [])
    old, new = OrderStore(v0_url), OrderStore(order_store_url)
    try:
        assert table_shapes(new, VERSION_TABLE) == table_shapes(old, VERSION_TABLE)
        assert set(table_shapes(new, VERSION_TABLE)) == set(order_tables.metadata.tables)
        with new.transaction() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": same_kind_of_float})
            diffs = compare_metadata(ctx, order_tables.metadata)
        assert [d for d in diffs if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)
                ] == []
    finally:
        old.close()
        new.close()
        drop_schema(v0_url)


def test_outbox_tables_are_named(store):
    with pytest.raises(ValueError, match="no outbox table 'trades': use 'orders' or 'fills'"):
        store.unpublished("trades")
    with pytest.raises(ValueError, match="no outbox table"):
        store.mark_published_keys("trades", ["k"])
