"""Where a live run's bars come from: the warm-up history, the hand-off from it to the feed
(decided once, when the run starts, and kept in the recovery folder), and the feed itself
(a Kafka topic, or the catalog replayed in process).

>>> import tempfile
>>> from connectors.data.catalog import Catalog
>>> from connectors.data.synthetic import generate_bars
>>> bars = generate_bars(10)
>>> provider = SeamlessDataProvider(Catalog(tempfile.mkdtemp()))
>>> _ = provider.catalog.write("A", "1d", bars)
>>> fill = gap_filler(provider, "1d")
>>> fill("A", int(bars["ts"][2]), int(bars["ts"][5]))["ts"].tolist() == bars["ts"][3:5].tolist()
True
>>> fill("ZZZ", 0, 1) is None
True
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connectors.data.questdb import QuestDBReader
from connectors.data.seamless import DataNotFound, SeamlessDataProvider
from connectors.live.exchange_feed import (
    ExchangeBarFeed,
    ExchangeFeed,
    make_exchange,
    market_name,
)
from connectors.live.exchange_trades import ExchangeTradeFeed, ExchangeTradeThread
from connectors.live.feeds import CatalogFeed, Feed, FeedError, ensure_topic
from connectors.live.kafka_feed import KafkaFeed
from connectors.live.kafka_io import JsonKafkaSink, topic_dlq
from connectors.live.questdb_feed import QuestDBTail, parse_source
from connectors.live.source import history_tail
from dataflows.recovery import RecoveryDir
from dataflows.replay import CallbackSink
from qmtl.core.bars import Batch
from qmtl.core.intervals import interval_ns
from qmtl.core.times import format_ts
from qmtl.live.options import LiveError, LiveOptions
from qmtl.sources import last_bars

log = logging.getLogger("qmtl.live")

MakeFeed = Callable[[dict[int, int] | None], Feed]


@dataclass
class HandOff:
    """The warm-up ``history`` per symbol, each symbol's history end (``ends``: its last
    bar time; feed bars at or before it are skipped), the run's identity (``meta``, with
    the feed's ``split`` for the in-process feed) and whether the run resumes.

    >>> HandOff({}, {"A": 5}, {"run_id": "r"}, resuming=False).ends
    {'A': 5}
    """

    history: dict[str, Batch]
    ends: dict[str, int]
    meta: dict[str, Any]
    resuming: bool


def last_history(
    data: SeamlessDataProvider, symbols: list[str], interval: str, n: int, end: int
) -> tuple[dict[str, Batch], dict[str, int]]:
    """The last ``n`` bars of each symbol at or before ``end`` from the data provider (which
    backfills what the catalog lacks when an origin is configured), and each symbol's last
    bar time; a symbol without history is named in a warning and warms up on live bars.

    >>> import tempfile
    >>> from connectors.data.catalog import Catalog
    >>> from connectors.data.synthetic import generate_bars
    >>> bars = generate_bars(10)
    >>> provider = SeamlessDataProvider(Catalog(tempfile.mkdtemp()))
    >>> _ = provider.catalog.write("A", "1d", bars)
    >>> h, ends = last_history(provider, ["A", "B"], "1d", 3, int(bars["ts"][5]))
    >>> len(h["A"]["ts"]), ends == {"A": int(bars["ts"][5])}
    (3, True)
    """
    history: dict[str, Batch] = {}
    ends: dict[str, int] = {}
    missing: list[str] = []
    if n == 0:
        return history, ends
    for s in symbols:
        try:
            tail = last_bars(data, s, interval, end, n)
        except DataNotFound:
            missing.append(s)
            continue
        if len(tail["ts"]):
            history[s] = tail
            ends[s] = int(tail["ts"][-1])
        else:
            missing.append(s)
    if missing:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5
                                          else "")
        log.warning("no %s history for %s before %s: warming up on live bars", interval, shown,
                    format_ts(end))
    return history, ends


def embedded_split(
    data: SeamlessDataProvider, symbols: list[str], interval: str, n: int, start: int | None
) -> int | None:
    """Where the in-process feed starts: before ``start``, or after each symbol's first ``n``
    bars (the latest of those times), so warm-up and feed do not overlap.

    >>> embedded_split(None, ["A"], "1d", 5, start=100)
    99
    """
    if start is not None:
        return start - 1
    if n == 0:
        return None
    split = None
    for s in symbols:
        try:
            ts = data.read(s, interval)["ts"]
        except DataNotFound as exc:
            raise LiveError(str(exc)) from None
        if len(ts):
            t = int(ts[min(n, len(ts)) - 1])
            split = t if split is None else max(split, t)
    return split


def gap_filler(
    data: SeamlessDataProvider, interval: str
) -> Callable[[str, int, int], Batch | None]:
    """``fill(symbol, after, before)``: bars strictly between two times from the data
    provider, or None when it has none (see the module docstring)."""

    def fill(symbol: str, after: int, before: int) -> Batch | None:
        try:
            return data.read(symbol, interval, after + 1, before - 1)
        except LookupError:
            return None

    return fill


def hand_off(
    o: LiveOptions,
    data: SeamlessDataProvider,
    universe: list[str],
    interval: str,
    n_warm: int,
    start: int | None,
    fresh: dict[str, Any],
) -> HandOff:
    """The warm-up history and hand-off: a new run decides it (history up to now or
    ``--start`` on Kafka; up to the feed's start in process) and records it in the recovery
    folder; a resumed run keeps the hand-off it decided when it started.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from connectors.data.catalog import Catalog
    >>> from connectors.data.synthetic import generate_bars
    >>> bars = generate_bars(10)
    >>> provider = SeamlessDataProvider(Catalog(tempfile.mkdtemp()))
    >>> _ = provider.catalog.write("A", "1d", bars)
    >>> o = LiveOptions(recovery_dir=Path(tempfile.mkdtemp()))
    >>> fresh = {"run_id": "r1", "strategy": "s", "symbols": ["A"], "interval": "1d"}
    >>> first = hand_off(o, provider, ["A"], "1d", 3, None, fresh)
    >>> first.resuming, first.meta["split"] == int(bars["ts"][2])
    (False, True)
    >>> again = hand_off(o, provider, ["A"], "1d", 3, None, {**fresh, "run_id": "r2"})
    >>> again.resuming, again.meta["run_id"], again.ends == first.ends
    (True, 'r1', True)
    """
    now = time.time_ns()
    rdir = None if o.recovery_dir is None else RecoveryDir(o.recovery_dir)
    meta = None if rdir is None else rdir.read_meta(fresh)
    if meta is not None:  # the hand-off decided when the run started
        split = meta.get("split")
        ends = {k: int(v) for k, v in meta["history_end"].items()}
        end = int(split) if split is not None else max(ends.values(), default=now)
        history, _ = last_history(data, universe, interval, n_warm, end)
        history = {k: history_tail(v, n_warm, before=ends[k]) for k, v in history.items()
                   if k in ends}
        return HandOff(history, ends, meta, resuming=True)
    if o.brokers or o.source:  # history up to now, or up to --start (where the live bars begin)
        split = start - 1 if start is not None else None
    else:
        split = embedded_split(data, universe, interval, n_warm, start)
    history, ends = last_history(data, universe, interval, n_warm, split if split else now)
    meta = {**fresh, "split": split, "history_end": ends}
    if rdir is not None:
        rdir.write_meta(meta)
    return HandOff(history, ends, meta, resuming=False)


def exchange_source(
    source: str, universe: list[str], interval: str, split: int | None, ends: dict[str, int],
    trades: bool = False,
) -> MakeFeed:
    """``--source ccxt:EXCHANGE``: the exchange's closed bars of each symbol from the end
    of its history (else from ``split``, else now), read in a thread
    (:class:`connectors.live.exchange_feed.ExchangeBarFeed`); with ``trades``
    (``--feed trades``) its trades after the bar before those, for the flow to make the bars
    of (:class:`connectors.live.exchange_trades.ExchangeTradeThread`). ``QMTL_CCXT_URLS``
    (JSON) overrides the exchange's API URLs.

    >>> exchange_source("kafka://h/t", ["A"], "1m", None, {})
    Traceback (most recent call last):
    ...
    qmtl.live.options.LiveError: --source kafka://h/t: use ccxt:EXCHANGE (e.g. ccxt:binance) or questdb://...
    """
    if not source.startswith("ccxt:"):
        raise LiveError(f"--source {source}: use ccxt:EXCHANGE (e.g. ccxt:binance) or "
                        "questdb://...")
    step = interval_ns(interval)
    first = int(split) + 1 if split is not None else time.time_ns()
    starts = {market_name(s): ends[s] + step if s in ends else first for s in universe}
    raw = os.environ.get("QMTL_CCXT_URLS")
    urls = json.loads(raw) if raw else None
    try:
        make_exchange(source)
    except (ValueError, ImportError) as exc:
        raise LiveError(f"--source {source}: {exc}") from None

    if trades:
        after = {m: v - step for m, v in starts.items()}

        def make_trades(positions: dict[int, int] | None) -> Feed:
            return ExchangeTradeThread(lambda: ExchangeTradeFeed(make_exchange(source, urls),
                                                                 list(after), after))

        return make_trades

    def make(positions: dict[int, int] | None) -> Feed:
        return ExchangeBarFeed(lambda: ExchangeFeed(make_exchange(source, urls), list(starts),
                                                    interval, starts))

    return make


def questdb_source(
    source: str, universe: list[str], interval: str, split: int | None, ends: dict[str, int]
) -> MakeFeed:
    """``--source questdb://...``: tail the table from the history's end (or ``split``,
    else now), or from the position of a resumed run
    (:class:`connectors.live.questdb_feed.QuestDBTail`).

    >>> make = questdb_source("questdb://127.0.0.1:1/x", ["A"], "1m", 99, {})
    >>> make(None).positions(), make({0: 500}).positions()
    ({0: 99}, {0: 500})
    """
    try:
        conninfo, table, page = parse_source(source)
    except ValueError as exc:
        raise LiveError(f"--source: {exc}") from None
    after = int(split) if split is not None else (min(ends.values()) if ends else
                                                   time.time_ns())

    def make(positions: dict[int, int] | None) -> Feed:
        start = (positions or {}).get(0, after)
        return QuestDBTail(QuestDBReader(conninfo, table=table), interval, universe, start,
                           page_rows=page)

    return make


class LogSink(CallbackSink):
    """Dead letters when there is no Kafka: counted and logged by the source already.

    >>> LogSink().build("dlq", 0, 1).write_batch([{"reason": "bad"}])
    """

    def __init__(self) -> None:
        super().__init__(lambda _record: None)


def open_feed(
    o: LiveOptions,
    data: SeamlessDataProvider,
    universe: list[str],
    interval: str,
    split: int | None,
    end: int | None,
    group: str,
    ends: dict[str, int] | None = None,
) -> tuple[MakeFeed, Any]:
    """How the live source opens its feed (at resumed positions), and the dead-letter sink:
    the Kafka topic and ``<topic>.dlq``, or the catalog replayed in process from ``split``
    (dead letters logged).

    >>> make_feed, dlq = open_feed(LiveOptions(), None, ["A"], "1d", None, None, "g")
    >>> isinstance(dlq, LogSink)
    True
    """
    if o.source and o.source.startswith("questdb://"):
        return questdb_source(o.source, universe, interval, split, ends or {}), LogSink()
    if o.source:
        return exchange_source(o.source, universe, interval, split, ends or {},
                               trades=o.feed == "trades"), LogSink()
    if o.brokers:
        brokers = o.brokers
        try:
            ensure_topic(brokers, o.topic, o.connect_timeout)
        except FeedError as exc:
            raise LiveError(str(exc)) from None

        def make_kafka(positions: dict[int, int] | None) -> Feed:
            return KafkaFeed(brokers, o.topic, group, positions, fetch_wait_ms=o.fetch_wait_ms)

        return make_kafka, JsonKafkaSink(brokers, topic_dlq(o.topic), lambda r: r.get("key"))

    def make_catalog(positions: dict[int, int] | None) -> Feed:
        after = None if split is None else int(split) + 1
        return CatalogFeed.from_catalog(data, universe, interval, after, end, o.speed,
                                        (positions or {}).get(0, 0))

    return make_catalog, LogSink()
