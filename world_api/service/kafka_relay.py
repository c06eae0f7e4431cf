"""Publish a world's activation events to Kafka, after they are stored (outbox relay).

Topic ``qmtl.world.<id>.activation``, key = world id, value = the ActivationEvent as JSON.
The relay remembers the last seq Kafka acknowledged per world and, on each call, publishes
every stored event after it, so events written while Kafka was away go out once it is back.
Events stored before the service started are served by the store (snapshot and SSE); the
relay starts from the world's seq when it first sees the world.

>>> topic_for("demo")
'qmtl.world.demo.activation'
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from world_api.service.store import Store

log = logging.getLogger("qmtl.world.kafka")


def topic_for(world: str) -> str:
    """The activation topic of ``world``."""
    return f"qmtl.world.{world}.activation"


class KafkaRelay:
    """Publishes stored activation events to Kafka (see the module docstring)."""

    def __init__(self, brokers: str, store: Store, timeout: float = 10.0) -> None:
        from confluent_kafka import Producer
        from confluent_kafka.admin import AdminClient

        # undelivered messages fail within one flush window, so the relay (not the client's
        # own queue) decides what is re-sent: nothing goes out twice from a stale queue
        conf = {
            "bootstrap.servers": brokers,
            "acks": "all",
            "message.timeout.ms": int(timeout * 1000),
            "socket.timeout.ms": int(timeout * 1000),
            "logger": log,
        }
        self.brokers = brokers
        self.store = store
        self.timeout = timeout
        self._producer = Producer(conf)
        self._admin = AdminClient({"bootstrap.servers": brokers})
        self._published: dict[str, int] = {}
        self._topics: set[str] = set()
        self._lock = threading.Lock()

    def _ensure_topic(self, topic: str) -> None:
        if topic in self._topics:
            return
        from confluent_kafka import KafkaError, KafkaException
        from confluent_kafka.admin import NewTopic

        futures = self._admin.create_topics(
            [NewTopic(topic, num_partitions=1, replication_factor=1)]
        )
        try:
            futures[topic].result(self.timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
        self._topics.add(topic)

    def start_world(self, world: str, seq: int) -> None:
        """Publish events of ``world`` after ``seq`` from now on."""
        with self._lock:
            self._published.setdefault(world, seq)

    def forget_world(self, world: str) -> None:
        """Drop what is known of ``world`` (it was deleted: a world made again under its id
        starts its seqs at 1, and they must be published)."""
        with self._lock:
            self._published.pop(world, None)

    def publish(self, world: str) -> int:
        """Publish every stored event of ``world`` after the last acknowledged one; return how
        many went out. Failures are logged and retried on the next call."""
        with self._lock:
            last = self._published.get(world)
            if last is None:
                return 0
            events = self.store.events_after(world, last)
            if not events:
                return 0
            topic = topic_for(world)
            acked: list[int] = []
            errors: list[Any] = []

            def on_delivery(err: Any, msg: Any, seq: int = 0) -> None:
                (errors if err else acked).append(err or seq)

            try:
                self._ensure_topic(topic)
                for ev in events:
                    self._producer.produce(
                        topic,
                        key=world.encode(),
                        value=ev.model_dump_json().encode(),
                        on_delivery=lambda err, msg, s=ev.seq: on_delivery(err, msg, s),
                    )
                # wait past message.timeout.ms: every message is then delivered or failed for
                # good, and nothing stale stays queued to be sent again later
                self._producer.flush(self.timeout + 5.0)
            except Exception as exc:
                log.warning("kafka %s: publishing %s events failed: %s", self.brokers, world, exc)
                self._topics.discard(topic)
                return 0
            if errors or len(acked) != len(events):
                self._topics.discard(topic)  # a restarted broker may have lost it
                log.warning(
                    "kafka %s: %d of %d events of %s not acknowledged (%s); will retry",
                    self.brokers,
                    len(events) - len(acked),
                    len(events),
                    world,
                    errors[:1],
                )
            # in-order delivery on one partition: everything up to the first gap is published
            done = last
            for ev in events:
                if ev.seq in acked:
                    done = ev.seq
                else:
                    break
            self._published[world] = done
            return done - last

    def close(self) -> None:
        """Flush what is in flight and stop the client."""
        self._producer.flush(self.timeout)
        self._producer = None  # type: ignore[assignment]
        self._admin = None  # type: ignore[assignment]
