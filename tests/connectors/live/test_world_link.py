"""A live run's links to its world against a real uvicorn WorldService behind a TCP proxy
that the tests cut and restore: the activation subscriber holds orders while the world is
away and catches up after, the metrics poster loses nothing and sends nothing twice."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest

from connectors.live import order_tables
from connectors.live.order_store import open_order_store
from connectors.live.world_link import (
    ActivationSubscriber,
    MetricsPoster,
    WorldUnavailable,
    world_info,
)
from dataflows.gate import ActivationBook, verdict
from qmtl.core.contracts import MetricsUpdate
from tests.world_api.conftest import TcpProxy, free_port, serve
from tests.world_api.service.conftest import update
from world_api.client import WorldServiceClient
from world_api.service.app import create_app


def eventually(check: Callable[[], bool], what: str, tries: int = 600) -> None:
    """Poll ``check`` (up to ~60 s under load) instead of asserting on timing."""
    pause = threading.Event()
    for _ in range(tries):
        if check():
            return
        pause.wait(0.1)
    raise AssertionError(f"never happened: {what}")


def ups(*items: tuple[str, int, float]) -> list[MetricsUpdate]:
    return [MetricsUpdate.model_validate(update(s, q, sh)) for s, q, sh in items]


@pytest.fixture
def world(tmp_path):
    """World 'w1' served by uvicorn, reached through a proxy: (direct url, proxied url, proxy)."""
    app = create_app(str(tmp_path / "world.db"), insecure_dev=True)
    with serve(app) as url:
        with WorldServiceClient(url) as client:
            client.create_world("w1")
            client.put_policy("w1", "top_k: 5")
        port = int(url.rsplit(":", 1)[1])
        proxy = TcpProxy(("127.0.0.1", port))
        try:
            yield url, f"http://127.0.0.1:{proxy.port}", proxy
        finally:
            proxy.cut()
    app.state.service.store.close()


def test_world_info_and_unreachable_world(world):
    url, _, _ = world
    assert world_info(url, None, "w1")["id"] == "w1"
    with pytest.raises(WorldUnavailable, match="unknown world 'nope'"):
        world_info(url, None, "nope")
    with pytest.raises(WorldUnavailable, match="cannot reach the world service"):
        world_info(f"http://127.0.0.1:{free_port()}", None, "w1", timeout=5)


def test_subscriber_holds_while_away_and_catches_up(world):
    url, proxied, proxy = world
    with WorldServiceClient(url) as client:
        client.post_metrics("w1", ups(("a", 1, 1.0)))
        book = ActivationBook("w1")
        sub = ActivationSubscriber(book, proxied, heartbeat=0.2, backoff=(0.05, 0.2)).start()
        try:
            eventually(lambda: verdict(book, "a", 0.0, 1e9).kind == "trade", "snapshot loaded")
            assert book.get("a").active and book.seq == client.activation("w1")["seq"]
            client.post_metrics("w1", ups(("b", 1, 2.0)))  # streamed while connected
            eventually(lambda: book.get("b") is not None and book.get("b").active, "b streamed")

            proxy.cut()
            eventually(lambda: verdict(book, "a", 0.0, 1e9).kind == "hold", "orders held")
            assert "no connection to world 'w1'" in verdict(book, "a", 0.0, 1e9).reason
            client.post_metrics("w1", ups(("c", 1, 3.0)))  # written while it is away
            proxy.restore()
            final = client.activation("w1")
            eventually(lambda: book.seq == final["seq"], "caught up after the outage")
            table = {r["strategy_id"]: (r["active"], r["weight"]) for r in final["strategies"]}
            for sid, (active, weight) in table.items():
                got = book.get(sid)
                assert got is not None and (got.active, got.weight) == (active, weight)
            assert verdict(book, "c", 0.0, 1e9).kind == "trade"
        finally:
            sub.close()


def test_poster_retries_through_an_outage_and_sends_each_update_once(world, tmp_path):
    url, proxied, proxy = world
    outbox = open_order_store(str(tmp_path / "orders.db"))
    poster = MetricsPoster(outbox, proxied, None, "w1", timeout=5, backoff=(0.05, 0.2),
                           interval=0.01).start()
    try:
        for u in ups(("a", 1, 1.0), ("a", 2, 1.1)):
            outbox.queue_update(u)
        poster.notify()
        eventually(lambda: poster.posted == 2, "first two posted")

        proxy.cut()
        for u in ups(("a", 3, 1.2), ("b", 1, 0.9)):
            outbox.queue_update(u)
        poster.notify()
        eventually(lambda: poster.last_error is not None, "the outage noticed")
        assert poster.posted == 2 and len(outbox.unsent_updates("w1")) == 2
        proxy.restore()
        eventually(lambda: poster.posted == 4 and poster.last_error is None, "caught up")
        assert outbox.unsent_updates("w1") == []
    finally:
        poster.close()
        outbox.close()
    with WorldServiceClient(url) as client:
        audit = [a for a in client.audit("w1") if a["action"] == "post_metrics"]
        assert sum(a["detail"]["updates"] for a in audit) == 4  # none lost
        assert sum(a["detail"]["duplicates"] for a in audit) == 0  # none twice
        assert client.strategy("w1", "a")["n_bars"] == 200


def test_poster_drops_a_batch_the_world_refuses(world, tmp_path):
    url, _, _ = world
    outbox = open_order_store(str(tmp_path / "orders.db"))
    with WorldServiceClient(url) as client:
        client.post_metrics("w1", ups(("a", 5, 1.0)))  # the world has seq 5 of run r1
        outbox.queue_update(ups(("a", 3, 1.0))[0])  # stale: a 409, sending again cannot help
        poster = MetricsPoster(outbox, url, None, "w1")
        assert poster.post_once(client) == 1
    assert outbox.unsent_updates("w1") == []
    outbox.close()


def test_updates_queued_before_returns_had_times_still_reach_the_world(world, tmp_path):
    """An update queued in the old form (bare returns) goes without its returns, and the
    current-form update batched with it is not refused with it."""
    url, _, _ = world
    outbox = open_order_store(str(tmp_path / "orders.db"))
    old = ('{"world": "w1", "strategy_id": "old", "run_id": "r", "seq": 1, "mode": "paper", '
           '"as_of": 1, "n_bars": 7, "metrics": {"sharpe": 1.5}, "returns": [0.1, 0.2]}')
    with outbox.transaction() as conn:
        conn.execute(order_tables.metric_updates.insert().values(
            world="w1", strategy_id="old", run_id="r", seq=1, body=old))
    outbox.queue_update(ups(("new", 1, 1.0))[0])
    with WorldServiceClient(url) as client:
        assert MetricsPoster(outbox, url, None, "w1").post_once(client) == 2
        assert client.strategy("w1", "old")["n_bars"] == 7
        assert client.strategy_returns("w1", "old")["points"] == []
        assert len(client.strategy_returns("w1", "new")["points"]) == 30
    outbox.close()


def test_subscriber_steps_over_evaluation_events(world):
    """A world that evaluates itself streams an ``event: evaluation`` per record its
    evaluator writes: the subscriber's book notes its seq and changes no activation."""
    url, proxied, _ = world
    with WorldServiceClient(url) as client:
        client.put_policy("w1", "top_k: 5\nevaluation: world")
        book = ActivationBook("w1")
        sub = ActivationSubscriber(book, proxied, heartbeat=0.2, backoff=(0.05, 0.2)).start()
        try:
            eventually(lambda: book.seq == client.activation("w1")["seq"], "snapshot loaded")
            # the evaluator's record of "a" (a world run id): activated, then evaluated
            got = client.post_metrics("w1", [
                MetricsUpdate.model_validate(update("a", 1, 1.0, run="world-abc-1"))])
            assert [e["active"] for e in got["events"]] == [True]
            seq = client.world("w1")["seq"]
            assert seq == got["events"][0]["seq"] + 1  # the evaluation event after it
            eventually(lambda: book.seq == seq, "the evaluation event's seq noted")
            # re-evaluated with no change of decision: an evaluation event only
            again = client.post_metrics("w1", [
                MetricsUpdate.model_validate(update("a", 1, 1.5, run="world-abc-2"))])
            assert again["events"] == [] and client.world("w1")["seq"] == seq + 1
            eventually(lambda: book.seq == seq + 1, "the second evaluation event noted")
            snap = {r["strategy_id"]: r for r in client.activation("w1")["strategies"]}
            assert list(snap) == ["a"]  # a recheck may reload the snapshot: the same table
            assert (book.get("a").active, book.get("a").weight) == (True, snap["a"]["weight"])
            assert book.get("") is None and book.gone is None
            assert verdict(book, "a", 0.0, 1e9).kind == "trade"
        finally:
            sub.close()
