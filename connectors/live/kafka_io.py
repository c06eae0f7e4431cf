"""Kafka producers of a live run: a Bytewax sink of JSON records (the dead-letter topic) and
``qmtl feed replay``, which publishes catalog bars to a topic at a chosen speed.

>>> topic_dlq("bars")
'bars.dlq'
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from bytewax.outputs import DynamicSink, StatelessSinkPartition

from connectors.live.bar_codec import encode_bar
from connectors.live.feeds import CatalogFeed, FeedError, ensure_topic, kafka_config

log = logging.getLogger("qmtl.kafka")


def topic_dlq(topic: str) -> str:
    """The dead-letter topic of ``topic``.

    >>> topic_dlq("ticks")
    'ticks.dlq'
    """
    return f"{topic}.dlq"


class _JsonPartition(StatelessSinkPartition[Any]):
    def __init__(self, brokers: str, topic: str, key: Callable[[Any], str | None]) -> None:
        from confluent_kafka import Producer

        self._producer = Producer({**kafka_config(brokers, 10.0), "linger.ms": 5})
        self._topic, self._key = topic, key
        self._failed = 0

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self._failed += 1
            log.warning("%s: a record was not delivered (%s)", self._topic, err)

    def write_batch(self, items: list[Any]) -> None:
        for item in items:
            key = self._key(item)
            self._producer.produce(
                self._topic,
                key=None if key is None else key.encode(),
                value=json.dumps(item, separators=(",", ":")).encode(),
                on_delivery=self._delivered,
            )
        self._producer.poll(0)

    def close(self) -> None:
        self._producer.flush(10.0)


class JsonKafkaSink(DynamicSink[Any]):
    """Writes each item (a JSON-able dict) to ``topic``, keyed by ``key(item)``; delivery is
    best effort (what matters durably, orders and fills, goes through the order store).

    >>> JsonKafkaSink("127.0.0.1:9092", "bars.dlq", lambda r: r.get("key")).topic
    'bars.dlq'
    """

    def __init__(self, brokers: str, topic: str, key: Callable[[Any], str | None]) -> None:
        self.brokers, self.topic, self.key = brokers, topic, key

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _JsonPartition:
        """One producer per worker."""
        ensure_topic(self.brokers, self.topic)
        return _JsonPartition(self.brokers, self.topic, self.key)


def publish_bars(
    brokers: str,
    topic: str,
    feed: CatalogFeed,
    progress: Callable[[int], None] | None = None,
    flush_every: int = 10_000,
    timeout: float = 10.0,
) -> int:
    """Publish every bar of ``feed`` (paced by its speed) to ``topic``, keyed by symbol, as
    JSON; return how many were acknowledged (:class:`FeedError` if any was not, or if the
    broker cannot be reached within ``timeout`` s).

    >>> publish_bars("127.0.0.1:1", "bars", CatalogFeed.from_memory({}), timeout=0.2)
    Traceback (most recent call last):
    ...
    connectors.live.feeds.FeedError: cannot reach Kafka at 127.0.0.1:1: ...
    """
    from confluent_kafka import Producer

    ensure_topic(brokers, topic, timeout)
    producer = Producer({**kafka_config(brokers, timeout), "linger.ms": 2, "acks": "all"})
    acked = failed = 0
    first_error: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        nonlocal acked, failed
        if err is None:
            acked += 1
        else:
            failed += 1
            if not first_error:
                first_error.append(str(err))

    sent = 0
    while not feed.exhausted:
        for msg in feed.poll(1000, 0.05):
            assert msg.bars is not None
            for symbol, bar in msg.bars:
                row = {k: v[0] for k, v in bar.items()}
                producer.produce(
                    topic, key=symbol.encode(), value=encode_bar(row), on_delivery=delivered
                )
                sent += 1
                if progress is not None:
                    progress(1)
                if sent % flush_every == 0:
                    producer.flush(30.0)
            producer.poll(0)
    producer.flush(30.0)
    if failed:
        raise FeedError(
            f"{failed} of {sent} bars were not acknowledged by {brokers} ({first_error[0]})"
        )
    return acked


def publish_messages(
    brokers: str,
    topic: str,
    messages: Iterable[tuple[str, bytes]],
    timeout: float = 10.0,
) -> int:
    """Publish ``(key, value)`` messages in order (e.g. trades from
    :mod:`connectors.live.trade_codec`); return how many were acknowledged
    (:class:`FeedError` if any was not).

    >>> publish_messages("127.0.0.1:1", "trades", [], timeout=0.2)
    Traceback (most recent call last):
    ...
    connectors.live.feeds.FeedError: cannot reach Kafka at 127.0.0.1:1: ...
    """
    from confluent_kafka import Producer

    ensure_topic(brokers, topic, timeout)
    producer = Producer({**kafka_config(brokers, timeout), "linger.ms": 2, "acks": "all"})
    counts = {"acked": 0, "failed": 0}
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        counts["failed" if err is not None else "acked"] += 1
        if err is not None and not errors:
            errors.append(str(err))

    sent = 0
    for key, value in messages:
        producer.produce(topic, key=key.encode(), value=value, on_delivery=delivered)
        sent += 1
        if sent % 10_000 == 0:
            producer.flush(30.0)
        producer.poll(0)
    producer.flush(30.0)
    if counts["failed"]:
        raise FeedError(f"{counts['failed']} of {sent} messages were not acknowledged by "
                        f"{brokers} ({errors[0]})")
    return counts["acked"]
