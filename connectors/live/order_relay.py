"""The outbox relay: publishes the orders and fills the order store holds to Kafka after
they are stored, so a broker outage delays orders but loses and repeats none (see
:class:`OrderRelay`). Needs the ``kafka`` extra (confluent-kafka).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from tenacity import Retrying, retry_if_result, stop_after_delay

from connectors.live.feeds import ensure_topic, kafka_config
from connectors.live.order_store import OrderStore, intent_key
from qmtl.core.contracts import Fill, OrderIntent

log = logging.getLogger("qmtl.orders")


class OrderRelay:
    """Publishes stored orders and fills to Kafka after they are stored (outbox), in a thread
    of its own (:meth:`start`).

    The flow hands over what it has just committed (:meth:`send`), and the relay produces it
    at once, without waiting for the broker: acknowledgements arrive in the background and
    are marked in the store in batches. Anything the broker did not acknowledge (it was
    away), and anything stored before a restart, is found by a sweep of the store and sent
    again, so an outage delays orders but loses none. An order is a target keyed by its bar:
    a consumer applies it only if its ``ts`` is after the last one it applied for that
    strategy and symbol (a retried order may arrive after a newer one).
    """

    def __init__(
        self,
        store: OrderStore,
        brokers: str,
        orders_topic: str = "orders",
        fills_topic: str = "fills",
        interval: float = 0.5,
        timeout: float = 5.0,
    ) -> None:
        from confluent_kafka import Producer  # the kafka extra

        self.store = store
        self.topics = {"orders": orders_topic, "fills": fills_topic}
        for topic in self.topics.values():  # one partition unless the operator made more
            ensure_topic(brokers, topic, timeout)
        self.interval = interval
        self.timeout = timeout
        self._producer = Producer(
            {
                **kafka_config(brokers, timeout),
                "acks": "all",
                "message.timeout.ms": int(timeout * 1000),
                "linger.ms": 0,
            }
        )
        self._queue: list[tuple[str, str, str]] = []  # (table, key, JSON) to produce
        self._inflight: set[tuple[str, str]] = set()
        self._acked: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.published = 0
        self._failing: str | None = None

    def send(self, orders: list[OrderIntent], fills: list[Fill]) -> None:
        """Publish orders and fills the flow has just stored: handed to the Kafka client in
        the caller's thread (it does not wait for the broker; the relay's thread marks the
        acknowledgements)."""
        items = [("orders", intent_key(o), o.model_dump_json()) for o in orders]
        items += [("fills", f.order_id, f.model_dump_json()) for f in fills]
        if items:
            try:
                self._produce(items)
            except BufferError:  # the client's queue is full (broker away): the sweep sends
                with self._lock:
                    self._queue += items
            self._wake.set()

    def _delivered(self, err: Any, _msg: Any, item: tuple[str, str]) -> None:
        with self._lock:
            self._inflight.discard(item)
            if err is None:
                self._acked.append(item)
        if err is not None:
            if self._failing is None:
                log.warning("cannot publish to Kafka (%s); will retry", err)
            self._failing = str(err)

    def _produce(self, items: list[tuple[str, str, str]]) -> None:
        for table, key, body in items:
            item = (table, key)
            with self._lock:
                if item in self._inflight:
                    continue
                self._inflight.add(item)
            try:
                self._producer.produce(
                    self.topics[table], key=key.encode(), value=body.encode(),
                    on_delivery=lambda err, msg, it=item: self._delivered(err, msg, it),
                )
            except BufferError:
                with self._lock:
                    self._inflight.discard(item)
                raise

    def _settle(self) -> int:
        """Mark what the broker acknowledged as published; return how many."""
        with self._lock:
            acked, self._acked = self._acked, []
        for table in ("orders", "fills"):
            keys = [k for t, k in acked if t == table]
            if keys:
                self.store.mark_published_keys(table, keys)
        if acked and self._failing is not None:
            log.info("publishing to Kafka again")
            self._failing = None
        self.published += len(acked)
        return len(acked)

    def _sweep(self, everything: bool = False) -> None:
        """Send again what was stored a while ago (everything, when closing) and is neither
        acknowledged nor in flight (the broker was away, or it was stored before a restart)."""
        with self._lock:
            busy = self._inflight | set(self._acked)
        # younger ones are on their way (or failed a moment ago: the client retries them)
        before = None if everything else time.time_ns() - int(self.timeout * 1e9)
        for table in ("orders", "fills"):
            rows = self.store.unpublished(table, before=before)
            self._produce([(table, key, body) for _, key, body in rows
                           if (table, key) not in busy])

    def publish_once(self, wait: float = 0.0) -> int:
        """Produce what is queued, serve acknowledgements (up to ``wait`` s) and mark them;
        return how many were marked."""
        with self._lock:
            items, self._queue = self._queue, []
        if items:
            self._produce(items)
        self._producer.poll(wait)
        return self._settle()

    def _loop(self) -> None:
        last_sweep = 0.0
        while not self._stop.is_set():
            try:
                if time.monotonic() - last_sweep > self.interval:
                    last_sweep = time.monotonic()
                    self._settle()
                    self._sweep()
                self.publish_once()
            except Exception as exc:  # store or client trouble: retry on the next round
                log.warning("order relay: %s", exc)
            if self._wake.wait(0.005 if self._inflight else self.interval):
                self._wake.clear()

    def start(self) -> OrderRelay:
        """Run in a background thread until :meth:`close`."""
        self._thread = threading.Thread(target=self._loop, name="qmtl-order-relay", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Publish what is left (best effort, up to the timeout) and stop."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            self._sweep(everything=True)
            if self._inflight:  # wait for the acknowledgements, up to the timeout
                Retrying(
                    stop=stop_after_delay(self.timeout),
                    retry=retry_if_result(lambda _: bool(self._inflight)),
                    retry_error_callback=lambda _: None,  # out of time: the next start sends
                )(self.publish_once, 0.1)
            self.publish_once()
        except Exception as exc:
            log.warning("order relay: %s (left unpublished; sent on the next start)", exc)
