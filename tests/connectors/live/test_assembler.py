"""The live source with trades on the feed (connectors.live.assembler in the source
partition): the open bars are in the source's snapshot with the feed's positions, so a run
restarted from a snapshot taken mid-bar makes the same bars as one that never stopped; bad
trade messages and out-of-order finer bars are dead letters."""

from __future__ import annotations

import numpy as np

from connectors.live.assembler import FeedAssembler
from connectors.live.bar_codec import encode_bar
from connectors.live.feeds import RawMessage
from connectors.live.source import LiveInput, LiveStats, _LivePartition
from connectors.live.trade_codec import encode_trade
from dataflows.control import RunControl
from dataflows.trade_bars import trades_to_bars
from tests.connectors.live.test_source import ListFeed, drain

S = 10**9
M = 60 * S


def trade_messages(n: int, seed: int = 2):
    rng = np.random.default_rng(seed)
    ts = np.sort(rng.integers(0, 20 * M, n)) + M  # bars from 00:01
    trades = {
        "ts": ts,
        "price": rng.uniform(1, 2, n).round(3),
        "size": rng.uniform(0, 1, n),
        "id": np.array([f"t{i}" for i in range(n)], dtype=object),
    }
    msgs = [
        RawMessage(0, i, b"A", encode_trade({k: trades[k][i] for k in trades})) for i in range(n)
    ]
    return trades, msgs


def partition(messages, resume=None, per_poll=7):
    spec = LiveInput(symbols=["A"], interval_ns=M, assembler=FeedAssembler.for_trades("1m"))
    feed = ListFeed(messages, per_poll)
    return _LivePartition(feed, spec, RunControl(), LiveStats(), resume)


def bars_of(items):
    parts = [b for kind, (s, b) in ((k, v) for k, v in items if k == "bar")]
    return {c: np.concatenate([p[c] for p in parts]) for c in parts[0]}


def test_a_restart_from_a_snapshot_mid_bar_makes_the_same_bars():
    trades, msgs = trade_messages(400)
    whole = bars_of(drain(partition(msgs)))
    want = trades_to_bars(trades, "1m")
    assert np.array_equal(whole["ts"], want["ts"][:-1])  # the last bar stays open
    assert np.array_equal(whole["close"], want["close"][:-1])
    first = partition(msgs)
    items = []
    for _ in range(20):  # 140 trades in, mid-bar
        items += first.next_batch()
    snap = first.snapshot()
    at = snap["positions"][0]
    assert at == 140 and snap["assembler"]["A"]["rows"]  # open trades are in the snapshot
    again = partition(msgs[at:], resume=snap)
    items += drain(again)
    got = bars_of(items)
    for c in whole:
        assert np.array_equal(got[c], whole[c]), c


def test_bad_trades_and_out_of_order_fine_bars_are_dead_letters():
    good = encode_trade({"ts": 30 * S, "price": 1.0, "size": 1.0})
    msgs = [
        RawMessage(0, 0, b"A", good),
        RawMessage(0, 1, b"A", b'{"ts": 31, "price": 0}'),
        RawMessage(0, 2, b"A", b"not json"),
    ]
    part = partition(msgs)
    items = drain(part)
    assert part.stats.dead_letters == 2
    assert {r["reason"].split(":")[0] for k, r in items if k == "dlq"} == {
        "field 'price' must be > 0, got 0.0",
        "malformed JSON",
    }
    bar = {"ts": 2 * M, "open": 1.0, "high": 1.0, "low": 1.0, "close": 1.0, "volume": 1.0}
    spec = LiveInput(
        symbols=["A"], interval_ns=60 * M, assembler=FeedAssembler("1h", "bars", feed_interval="1m")
    )
    fine = [
        RawMessage(0, i, b"A", encode_bar({**bar, "ts": t * M}))
        for i, t in enumerate([1, 2, 2, 60, 61])
    ]
    part = _LivePartition(ListFeed(fine), spec, RunControl(), LiveStats(), None)
    items = drain(part)
    assert part.stats.dead_letters == 1  # the repeated 00:02 bar
    hours = [b for k, (s, b) in ((k, v) for k, v in items if k == "bar")]
    assert [int(t) // M for b in hours for t in b["ts"]] == [60]
    assert hours[0]["volume"].tolist() == [3.0]
