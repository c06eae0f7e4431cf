"""A Kafka topic as a live feed (:class:`KafkaFeed`): every partition through one consumer,
from the positions a recovery snapshot holds, with the broker's health reported to the
source and a topic recreated by a restarted broker read again from its start.

>>> KafkaFeed("127.0.0.1:1", "bars", "g", {0: 10}, timeout=0.2)
Traceback (most recent call last):
...
connectors.live.feeds.FeedError: cannot reach Kafka at 127.0.0.1:1: ...
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from connectors.live.feeds import FeedError, RawMessage, ensure_topic, kafka_config

log = logging.getLogger("qmtl.live")


@dataclass
class _Health:
    error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class KafkaFeed:
    """Every partition of ``topic`` through one consumer of group ``group``, from
    ``positions`` (else the beginning). Offsets are committed to the group only when the
    run snapshots its recovery state (:meth:`commit`), for monitoring; on restart the
    recovery state's positions are the ones used.

    >>> KafkaFeed("127.0.0.1:1", "bars", "g", {0: 10}, timeout=0.2)
    Traceback (most recent call last):
    ...
    connectors.live.feeds.FeedError: cannot reach Kafka at 127.0.0.1:1: ...
    """

    def __init__(
        self,
        brokers: str,
        topic: str,
        group: str,
        positions: dict[int, int] | None = None,
        timeout: float = 10.0,
        fetch_wait_ms: int = 5,
    ) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.topic, self.brokers = topic, brokers
        self.exhausted = False
        partitions = ensure_topic(brokers, topic, timeout)
        self._health = _Health()
        conf = {
            **kafka_config(brokers, timeout),
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",  # a broker that lost the topic starts again at 0
            "enable.partition.eof": False,
            # how long the broker may hold a fetch for more data: the floor of the latency
            "fetch.wait.max.ms": fetch_wait_ms,
            "error_cb": self._on_error,
        }
        self._consumer = Consumer(conf)
        self._positions = {p: int(o) for p, o in (positions or {}).items()}
        self._consumer.assign(
            [
                TopicPartition(topic, p, self._positions.get(p, OFFSET_BEGINNING))
                for p in range(partitions)
            ]
        )
        self._tp = TopicPartition
        self._partitions = partitions
        self._checked = time.monotonic()

    def _check_offsets(self) -> None:
        """A broker that lost the topic (restarted without its data) starts offsets again at
        0: when a partition's end is now before our position, read it from its beginning
        (bars already used are skipped by their time, so nothing is used twice)."""
        from confluent_kafka import KafkaError, KafkaException

        for p in range(self._partitions):
            pos = self._positions.get(p)
            if pos is None:
                continue
            try:
                low, high = self._consumer.get_watermark_offsets(
                    self._tp(self.topic, p), timeout=1.0, cached=False
                )
            except KafkaException as exc:
                err = exc.args[0]
                self._on_error(err)
                if err.code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_PARTITION):
                    # the broker came back without it: create it, so that it fills again
                    with contextlib.suppress(FeedError):
                        ensure_topic(self.brokers, self.topic, timeout=2.0)
                return
            if high < pos:
                log.warning(
                    "%s[%d] ends at offset %d, before our position %d: the topic was "
                    "recreated; reading it again from offset %d", self.topic, p, high, pos, low,
                )
                tp = self._tp(self.topic, p, low)
                try:
                    self._consumer.seek(tp)
                except KafkaException:  # not fetching yet: assign the start instead
                    self._consumer.assign(
                        [self._tp(self.topic, q, low if q == p else self._positions.get(q, 0))
                         for q in range(self._partitions)]
                    )
                self._positions[p] = low

    def _on_error(self, err: Any) -> None:
        with self._health.lock:
            self._health.error = f"Kafka {self.brokers}: {err.str()}"

    def status(self) -> str | None:
        """The last client error, until messages flow again."""
        return self._health.error

    def poll(self, max_messages: int, timeout: float) -> list[RawMessage]:
        """What has arrived, up to ``max_messages``; waits up to ``timeout`` s for the first
        (returning as soon as one arrives)."""
        msgs = self._consumer.consume(max_messages, 0)
        if not msgs:
            first = self._consumer.poll(timeout)
            msgs = [first] if first is not None else []
            if first is not None and max_messages > 1:
                msgs += self._consumer.consume(max_messages - 1, 0)
        if not msgs and self._health.error is not None and time.monotonic() - self._checked > 1:
            # idle after an outage: did the broker come back without the topic?
            self._checked = time.monotonic()
            self._check_offsets()
        out = []
        for m in msgs:
            err = m.error()
            if err is not None:
                self._on_error(err)
                continue
            out.append(RawMessage(m.partition(), m.offset(), m.key(), m.value()))
            self._positions[m.partition()] = m.offset() + 1
        if out and self._health.error is not None:
            with self._health.lock:
                log.info("%s: messages flow again (%s)", self.topic, self._health.error)
                self._health.error = None
        return out

    def positions(self) -> dict[int, int]:
        """Next offset per partition read so far."""
        return dict(self._positions)

    def commit(self, positions: dict[int, int]) -> None:
        """Commit ``positions`` to the consumer group (asynchronously, best effort)."""
        if not positions:
            return
        try:
            self._consumer.commit(
                offsets=[self._tp(self.topic, p, o) for p, o in positions.items()],
                asynchronous=True,
            )
        except Exception as exc:  # monitoring only: the recovery state is what counts
            log.debug("commit of %s offsets failed: %s", self.topic, exc)

    def close(self) -> None:
        """Close the consumer (giving up after a few seconds: closing can wait forever on a
        broker that is gone, and the run's state is in its snapshots, not in the group)."""
        closer = threading.Thread(target=self._consumer.close, daemon=True)
        closer.start()
        closer.join(5.0)
        if closer.is_alive():
            log.warning("the Kafka consumer of %s did not close within 5 s (broker %s gone?)",
                        self.topic, self.brokers)
