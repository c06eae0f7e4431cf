"""The world store's migrations, on SQLite and on the machine's PostgreSQL: a store made by
the code before migrations ("version 0", its DDL copied here verbatim) upgrades in place on
open and keeps every row; a fresh store gets the same tables; the migrations and the
store's table definitions agree."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from connectors.live.order_store import VERSION_TABLE as ORDERS_VERSION_TABLE
from connectors.live.order_store import open_order_store
from qmtl.core.contracts import MetricsUpdate
from qmtl.core.db import head_revision
from tests.db_versions import drop_schema, same_kind_of_float, table_shapes, write_v0
from world_api.domain.evaluator import Change, WorldEngine
from world_api.domain.policy import Policy
from world_api.service import tables
from world_api.service.store import (
    MIGRATIONS,
    VERSION_TABLE,
    Conflict,
    Store,
    TokenInfo,
    WorldInfo,
    open_store,
)

HEAD = head_revision(MIGRATIONS)

# The DDL of world_api/service/store.py before it had migrations (commit 77c3deb), verbatim.
V0_DDL: list[str] = [
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS worlds (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, capital DOUBLE PRECISION NOT NULL,
        mode TEXT NOT NULL, created BIGINT NOT NULL, seq BIGINT NOT NULL DEFAULT 0,
        policy_version INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS policies (
        world TEXT NOT NULL, version INTEGER NOT NULL, body TEXT NOT NULL,
        created BIGINT NOT NULL, PRIMARY KEY (world, version))""",
    """CREATE TABLE IF NOT EXISTS strategy_state (
        world TEXT NOT NULL, strategy_id TEXT NOT NULL, state TEXT NOT NULL,
        PRIMARY KEY (world, strategy_id))""",
    """CREATE TABLE IF NOT EXISTS events (
        world TEXT NOT NULL, seq BIGINT NOT NULL, ts BIGINT NOT NULL,
        strategy_id TEXT NOT NULL, active INTEGER NOT NULL, weight DOUBLE PRECISION NOT NULL,
        reason TEXT NOT NULL, policy_version INTEGER NOT NULL, PRIMARY KEY (world, seq))""",
    """CREATE TABLE IF NOT EXISTS metric_keys (
        world TEXT NOT NULL, strategy_id TEXT NOT NULL, run_id TEXT NOT NULL,
        seq BIGINT NOT NULL, PRIMARY KEY (world, strategy_id, run_id, seq))""",
    """CREATE TABLE IF NOT EXISTS tokens (
        hash TEXT PRIMARY KEY, role TEXT NOT NULL, name TEXT NOT NULL,
        created BIGINT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS audit (
        id {serial}, world TEXT, ts BIGINT NOT NULL, actor TEXT NOT NULL,
        action TEXT NOT NULL, detail TEXT NOT NULL, request_id TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS plans (
        id TEXT PRIMARY KEY, world TEXT NOT NULL, base_seq BIGINT NOT NULL,
        body TEXT NOT NULL, created BIGINT NOT NULL, applied INTEGER NOT NULL DEFAULT 0)""",
]
def engine_with_history() -> tuple[WorldEngine, list[Change]]:
    eng = WorldEngine(Policy(top_k=2))
    changes: list[Change] = []
    for seq, (sid, sharpe) in enumerate([("a", 1.0), ("b", 2.0), ("a", 1.5)], start=1):
        changes += eng.ingest(MetricsUpdate(
            world="w1", strategy_id=sid, run_id="r", seq=seq, mode="paper", as_of=seq,
            n_bars=100 + seq, metrics={"sharpe": sharpe},
            returns=[(3 * seq, 0.01), (3 * seq + 1, -0.02), (3 * seq + 2, 0.005 * seq)],
        ))
    return eng, changes


def v0_rows(eng: WorldEngine) -> list[tuple[str, list[Any]]]:
    p1, p2 = Policy().model_dump_json(), Policy(top_k=2).model_dump_json()
    return [
        ("INSERT INTO schema_version (version) VALUES (?)", [1]),
        ("INSERT INTO worlds (id, name, capital, mode, created, seq, policy_version) "
         "VALUES (?, ?, ?, ?, ?, ?, ?)", ["w1", "demo", 2.5e6, "live", 11, 2, 2]),
        ("INSERT INTO policies (world, version, body, created) VALUES (?, ?, ?, ?)",
         ["w1", 1, p1, 12]),
        ("INSERT INTO policies (world, version, body, created) VALUES (?, ?, ?, ?)",
         ["w1", 2, p2, 13]),
        *[("INSERT INTO strategy_state (world, strategy_id, state) VALUES (?, ?, ?)",
           ["w1", sid, json.dumps(s.to_dict())]) for sid, s in eng.strategies.items()],
        ("INSERT INTO events (world, seq, ts, strategy_id, active, weight, reason, "
         "policy_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
         ["w1", 1, 14, "a", 1, 0.1 + 0.2, "in: top 2", 2]),
        ("INSERT INTO events (world, seq, ts, strategy_id, active, weight, reason, "
         "policy_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
         ["w1", 2, 15, "b", 0, 0.0, "out", 2]),
        ("INSERT INTO metric_keys (world, strategy_id, run_id, seq) VALUES (?, ?, ?, ?)",
         ["w1", "a", "r", 3]),
        ("INSERT INTO tokens (hash, role, name, created) VALUES (?, ?, ?, ?)",
         ["h4sh", "operator", "boss", 16]),
        ("INSERT INTO audit (world, ts, actor, action, detail, request_id) "
         "VALUES (?, ?, ?, ?, ?, ?)", ["w1", 17, "boss", "create_world", '{"id": "w1"}', "q1"]),
        ("INSERT INTO audit (world, ts, actor, action, detail, request_id) "
         "VALUES (?, ?, ?, ?, ?, ?)", ["w1", 18, "quant", "post_metrics", "{}", "q2"]),
        ("INSERT INTO plans (id, world, base_seq, body, created, applied) "
         "VALUES (?, ?, ?, ?, ?, ?)", ["p1", "w1", 2, '{"weights": {"a": 1.0}}', 19, 1]),
    ]


def db_tables(store) -> set[str]:
    with store.transaction() as conn:
        return set(sa.inspect(conn).get_table_names())


@contextlib.contextmanager
def db_messages() -> Iterator[list[str]]:
    """What ``qmtl.db`` logs at INFO meanwhile (on its own handler: the CLI may have stopped
    "qmtl" propagating to the root logger)."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            messages.append(record.getMessage())

    logger, handler = logging.getLogger("qmtl.db"), Collect()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def test_a_version_0_store_upgrades_in_place_and_keeps_every_row(store_url):
    eng, _ = engine_with_history()
    write_v0(store_url, V0_DDL, v0_rows(eng))
    with db_messages() as said:
        store = open_store(store_url)
    try:
        assert [m.split(": ", 1)[1] for m in said] == [
            f"schema upgraded from before migrations to {HEAD}"]
        assert store.db.revision(VERSION_TABLE) == HEAD
        assert "schema_version" not in db_tables(store)  # the version table replaces it
        assert store.get_world("w1") == WorldInfo(id="w1", name="demo", capital=2.5e6,
                                                  mode="live")
        assert store.world_seq("w1") == 2
        assert store.get_policy("w1") == (2, Policy(top_k=2))
        assert store.get_policy("w1", 1) == (1, Policy())
        loaded = store.load_engine("w1")
        assert loaded.policy_version == 2
        assert {sid: s.to_dict() for sid, s in loaded.strategies.items()} == {
            sid: s.to_dict() for sid, s in eng.strategies.items()}
        evs = store.events_after("w1", 0)
        assert [(e.seq, e.ts, e.strategy_id, e.active, e.weight, e.reason, e.policy_version)
                for e in evs] == [(1, 14, "a", True, 0.1 + 0.2, "in: top 2", 2),
                                  (2, 15, "b", False, 0.0, "out", 2)]
        assert store.seen_keys("w1", [("a", "r", 3), ("a", "r", 4)]) == {("a", "r", 3)}
        # the old token row: its id is its hash's first 8 hex digits (this one is shorter),
        # its name its owner, its hash marked as the old unsalted scheme
        assert store.token("h4sh") == (
            TokenInfo(id="h4sh", owner="boss", role="operator", created=16), "sha256$h4sh")
        assert store.get_plan("w1", "p1") == (2, {"weights": {"a": 1.0}}, True)
        # the upgraded store takes new writes after the old rows: seqs and audit ids go on
        events = store.commit("w1", loaded, [Change(strategy_id="b", active=True, weight=0.5,
                                                    reason="in")],
                              keys=[("b", "r", 9)], actor="quant", action="post_metrics",
                              request_id="q3")
        assert [e.seq for e in events] == [3]
        assert [(a["ts"], a["actor"], a["request_id"]) for a in store.audit_log("w1")][:2] == [
            (17, "boss", "q1"), (18, "quant", "q2")]
        assert [a["request_id"] for a in store.audit_log("w1")] == ["q1", "q2", "q3"]
        with pytest.raises(Conflict):  # the old idempotency key still holds
            store.commit("w1", loaded, [], keys=[("a", "r", 3)])
    finally:
        store.close()
    with db_messages() as said:
        again = open_store(store_url)  # opening an upgraded store changes nothing
    try:
        assert again.db.revision(VERSION_TABLE) == HEAD and again.world_seq("w1") == 3
        assert said == []
    finally:
        again.close()


def test_a_fresh_store_has_the_version_0_tables(store_url, tmp_path):
    v0_url = (str(tmp_path / "v0.db") if not store_url.startswith("postgresql")
              else store_url + "_v0")
    write_v0(v0_url, V0_DDL, [])
    old = open_store(v0_url)
    with db_messages() as said:
        new = open_store(store_url)
    try:
        assert said == []  # a new store is made, not upgraded: nothing to say
        assert table_shapes(new, VERSION_TABLE) == table_shapes(old, VERSION_TABLE)
        assert set(table_shapes(new, VERSION_TABLE)) == set(tables.metadata.tables)
    finally:
        old.close()
        new.close()
        drop_schema(v0_url)


def test_the_migrations_make_what_the_table_definitions_say(store_url):
    store = open_store(store_url)
    try:
        with store.transaction() as conn:
            ctx = MigrationContext.configure(conn, opts={"compare_type": same_kind_of_float})
            diffs = compare_metadata(ctx, tables.metadata)
        assert [d for d in diffs if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)
                ] == []
    finally:
        store.close()


def test_stores_opened_at_once_on_a_new_database_migrate_once(store_url):
    opened, failed = [], []

    def opener() -> None:
        try:
            opened.append(open_store(store_url))
        except Exception as exc:  # reported below
            failed.append(exc)

    threads = [threading.Thread(target=opener) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    try:
        assert failed == [] and len(opened) == 4
        opened[0].create_world(WorldInfo(id="w1"))
        assert [w.id for w in opened[3].list_worlds()] == ["w1"]
        with opened[0].transaction() as conn:
            assert conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).all() == [
                (HEAD,)]
    finally:
        for s in opened:
            s.close()


@pytest.mark.parametrize("shared", [True, False], ids=["one database", "two databases"])
def test_both_stores_opened_at_once_each_migrate(store_url, tmp_path, shared):
    """The world store and the order store, in one database (one schema) or two, opened in
    threads at once: each keeps its own version table at its own head (Alembic's context is
    process-wide, so migrations of different databases in one process take turns too)."""
    orders_url = store_url if shared else (
        store_url + "_orders" if store_url.startswith("postgresql")
        else str(tmp_path / "orders.db"))
    opened, failed = [], []

    def opener(make: Any, url: str) -> None:
        try:
            opened.append(make(url))
        except Exception as exc:  # reported below
            failed.append(exc)

    threads = [threading.Thread(target=opener, args=args)
               for args in [(open_store, store_url), (open_order_store, orders_url)] * 4]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    try:
        assert failed == [] and len(opened) == 8
        worlds = [s for s in opened if isinstance(s, Store)]
        orders = [s for s in opened if not isinstance(s, Store)]
        assert {s.db.revision(VERSION_TABLE) for s in worlds} == {HEAD}
        assert {s.db.revision(ORDERS_VERSION_TABLE) for s in orders} == {"0001"}
        assert "worlds" not in db_tables(orders[0]) or shared
    finally:
        for s in opened:
            s.close()
        if not shared:
            drop_schema(orders_url)
