"""The world's realized return is its book's: two strategies active in a real world server,
long and short one symbol, post their targets on Tansu; the book trades them on the paper
broker and posts each closed bar's marked-to-market return. The world's realized series
equals the account's return computed here from the fills, fees and bar closes, the
strategies' own paper returns add nothing to it, and a failed post is retried."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import numpy as np
from confluent_kafka import Producer

from connectors.brokers.paper import PaperBroker
from connectors.live.world_link import ActivationSubscriber
from dataflows.gate import ActivationBook
from qmtl.book_run.process import Loop, world_poster
from qmtl.book_run.service import BookConfig, BookService
from qmtl.book_run.store import open_book_store
from qmtl.book_run.targets import KafkaTargets, TargetUpdate, publish_targets
from qmtl.core.contracts import MetricsUpdate
from tests.e2e.live_helpers import activate, wait_for, world_server
from world_api.client import WorldServiceClient

W = "bookr"
CLOSES = [100.0, 101.0, 99.0, 102.5, 103.0, 101.5]
CASH = 10_000.0


def post(p: Producer, topic: str, seq: int, price: float) -> None:
    for sid, w in (("long", 0.9 if seq % 2 else 0.6), ("short", -0.5)):
        publish_targets(p, TargetUpdate(world=W, strategy_id=sid, seq=seq, ts=seq,
                                        weights={"BTC": w}, prices={"BTC": price}), topic)
    p.flush(10)


def marked(fills: list, closes: list[float]) -> list[float]:
    """The account's return per bar from its fills, fees and the closes (by hand)."""
    equity, prev = [], CASH
    out = []
    for t, close in enumerate(closes, start=1):
        mine = [f for f in fills if f.ts <= t]
        cash = CASH - sum(f.qty * f.price + f.fee for f in mine)
        e = cash + sum(f.qty for f in mine) * close
        equity.append(e)
        out.append(e / prev - 1.0)
        prev = e
    return out


class Flaky:
    """A poster whose world is unreachable for its first calls."""

    def __init__(self, post, fail: int) -> None:
        self.post, self.fail, self.calls = post, fail, 0

    def __call__(self, points) -> None:
        self.calls += 1
        if self.calls <= self.fail:
            raise httpx.ConnectError("world unreachable")
        self.post(points)


def test_the_worlds_realized_return_is_the_books_marked_return(kafka, tmp_path: Path) -> None:
    topic = f"targets-{time.time_ns()}"
    p = Producer({"bootstrap.servers": kafka.brokers})
    with world_server(tmp_path, W) as url, WorldServiceClient(url) as client:
        activate(url, W, "long")
        activate(url, W, "short")
        act = ActivationBook(W)
        sub = ActivationSubscriber(act, url, heartbeat=0.5).start()
        broker = PaperBroker(cash=CASH, fee_bps=10.0)
        svc = BookService(
            open_book_store(str(tmp_path / "b.db")), broker, BookConfig(W, symbols=("BTC",))
        )
        svc.start()
        src = KafkaTargets(kafka.brokers, W, topic)
        poster = Flaky(world_poster(client, W), fail=2)
        loop = Loop(svc, src, activation=act, max_age=10.0, reconcile_every=1e9,
                    post_returns=poster)
        try:
            assert wait_for(lambda: act.get("short") is not None, 30)
            for seq, close in enumerate(CLOSES, start=1):
                post(p, topic, seq, close)
                assert wait_for(lambda s=seq: (loop.once(),
                                               svc.led.target_seq.get("short") == s)[1], 30)
                # the strategies' own paper returns: a world with a book realizes none
                u = MetricsUpdate(world=W, strategy_id="long", run_id="paper", seq=seq,
                                  mode="paper", as_of=seq, n_bars=seq, metrics={"sharpe": 1.0},
                                  returns=[(seq, 0.5)])
                client.post_metrics(W, [u])
            loop.once()
            assert poster.calls > 2 and not loop.marks.pending  # retried until it went
            assert svc.led.fills and all(1 <= f.ts <= len(CLOSES) for f in svc.led.fills)
            want = marked(svc.led.fills, CLOSES)[:-1]  # the last bar is not closed yet
            got = client.world_returns(W)
            assert got["realized_source"] == "book"
            assert [pt["ts"] for pt in got["points"]] == list(range(1, len(CLOSES)))
            np.testing.assert_allclose([pt["return"] for pt in got["points"]], want,
                                       rtol=1e-12, atol=1e-15)
            assert any(abs(r) > 1e-4 for r in want)  # the account moved
            m = client.world_metrics(W)
            assert m["realized_source"] == "book" and m["realized"]["n_bars"] == len(want)
        finally:
            sub.close()
            src.close()
