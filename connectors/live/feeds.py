"""Live bar feeds: a Kafka topic, or the catalog replayed in process at a chosen speed.

A feed hands the live source raw messages in arrival order, remembers how far it got
(``positions``: the next offset per partition) and can start again from given positions,
which is what Bytewax recovery stores. :class:`connectors.live.kafka_feed.KafkaFeed` reads
every partition of a topic with one consumer (one reader keeps the hand-off from history
simple; the keyed steps after it still spread symbols over workers); the Kafka settings and
topic check it shares with the producers are here. :class:`CatalogFeed` needs nothing running: it
replays catalog bars in time order, releasing them at ``speed``, one message per bar, just
as a Kafka topic would deliver them.

>>> import numpy as np
>>> bars = {"ts": np.array([1, 2]), **{c: np.ones(2) for c in ("open", "high", "low",
...         "close", "volume")}}
>>> feed = CatalogFeed.from_memory({"A": bars}, speed="max")
>>> [(m.offset, m.bars[0][0]) for m in feed.poll(10, 0.0)]
[(0, 'A'), (1, 'A')]
>>> feed.exhausted, feed.positions()
(True, {0: 2})
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tenacity import Retrying, retry_if_result, stop_after_delay, wait_exponential

from connectors.data.memory import aligned_batches
from qmtl.core.bars import Batch
from qmtl.core.errors import QmtlError

log = logging.getLogger("qmtl.live")


@dataclass
class RawMessage:
    """One message of a feed: where it came from, and its key and value (or, for in-process
    feeds, the bars themselves, or the trades for the live source's assembler).

    >>> RawMessage(0, 41, b"AAPL", b'{"ts": 1}').offset
    41
    """

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    bars: list[tuple[str, Batch]] | None = None
    trades: list[tuple[str, Batch]] | None = None


class Feed(Protocol):
    """What the live source reads from (see the module docstring).

    >>> isinstance(CatalogFeed.from_memory({}).positions(), dict)  # a CatalogFeed is one
    True
    """

    topic: str
    exhausted: bool

    def poll(self, max_messages: int, timeout: float) -> list[RawMessage]:
        """Up to ``max_messages`` messages, waiting at most ``timeout`` s for the first."""

    def positions(self) -> dict[int, int]:
        """The next offset to read, per partition."""

    def commit(self, positions: dict[int, int]) -> None:
        """Record ``positions`` where the system's own tools can see them (best effort)."""

    def status(self) -> str | None:
        """None when healthy, else why not (e.g. the broker is unreachable)."""

    def close(self) -> None:
        """Release connections."""


class FeedError(QmtlError, RuntimeError):
    """The feed cannot be used (broker unreachable, topic unusable); the text says why.

    >>> isinstance(FeedError("topic 'x' does not exist"), RuntimeError)
    True
    """


# -- speed --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Speed:
    """Replay pace: ``"max"``; ``"60x"`` (60 times real time); ``"10/s"`` (10 bar times a
    second, every symbol's bar of a time together).

    >>> Speed.parse("60x").factor, Speed.parse("10/s").per_second, Speed.parse("max").unpaced
    (60.0, 10.0, True)
    >>> Speed.parse("fast")
    Traceback (most recent call last):
    ...
    ValueError: speed 'fast': use max, Nx (times real time, e.g. 60x) or N/s (bar times a second)
    """

    factor: float | None = None
    per_second: float | None = None

    @property
    def unpaced(self) -> bool:
        """True for ``max``."""
        return self.factor is None and self.per_second is None

    @classmethod
    def parse(cls, text: str) -> Speed:
        """Read ``max``, ``Nx`` or ``N/s``."""
        t = text.strip().lower()
        if t == "max":
            return cls()
        m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*(x|/s)", t)
        if not m or float(m.group(1)) <= 0:
            raise ValueError(
                f"speed {text!r}: use max, Nx (times real time, e.g. 60x) "
                "or N/s (bar times a second)"
            )
        value = float(m.group(1))
        return cls(factor=value) if m.group(2) == "x" else cls(per_second=value)

    def delay(self, ts: int, first_ts: int, index: int) -> float:
        """Seconds after the start at which the bar time ``ts`` (the ``index``-th distinct
        time) is due.

        >>> Speed.parse("2x").delay(4 * 10**9, 0, 1), Speed.parse("4/s").delay(0, 0, 2)
        (2.0, 0.5)
        """
        if self.factor is not None:
            return (ts - first_ts) / 1e9 / self.factor
        if self.per_second is not None:
            return index / self.per_second
        return 0.0


# -- in process ---------------------------------------------------------------------------


def time_ordered_rows(
    chunks: Iterator[tuple[str, Batch]], symbols: Sequence[str]
) -> Iterator[tuple[int, str, Batch]]:
    """Rows ``(ts, symbol, one-row batch)`` in time order (symbols in ``symbols`` order at
    equal times), from time-aligned ``(symbol, batch)`` chunks (see
    :func:`connectors.data.memory.align`), holding one round of chunks at a time.

    >>> import numpy as np
    >>> a = {"ts": np.array([1, 3]), "close": np.array([1.0, 2.0])}
    >>> b = {"ts": np.array([1, 2]), "close": np.array([5.0, 6.0])}
    >>> from connectors.data.memory import aligned_batches
    >>> [(t, s) for t, s, _ in time_ordered_rows(aligned_batches({"A": a, "B": b}), "AB")]
    [(1, 'A'), (1, 'B'), (2, 'B'), (3, 'A')]
    """
    rank = {s: i for i, s in enumerate(symbols)}
    held: list[tuple[str, Batch]] = []
    seen: set[str] = set()

    def flush() -> Iterator[tuple[int, str, Batch]]:
        rows = [(int(b["ts"][i]), rank[s], s, i, b) for s, b in held for i in range(len(b["ts"]))]
        rows.sort(key=lambda r: (r[0], r[1]))
        for ts, _, s, i, b in rows:
            yield ts, s, {k: v[i : i + 1] for k, v in b.items()}
        held.clear()
        seen.clear()

    for symbol, batch in chunks:
        if symbol in seen:  # a new round of the alignment starts
            yield from flush()
        held.append((symbol, batch))
        seen.add(symbol)
    yield from flush()


class CatalogFeed:
    """Bars replayed in process, one message per bar, released at ``speed`` (see the module
    docstring). ``rows`` yields ``(ts, symbol, one-row batch)`` in time order; ``start_at``
    skips that many rows (resume).

    >>> import numpy as np
    >>> bars = {"ts": np.array([1, 2, 3]), "close": np.ones(3)}
    >>> feed = CatalogFeed.from_memory({"A": bars}, start_at=2)  # resumed after 2 bars
    >>> [m.offset for m in feed.poll(10, 0.0)]
    [2]
    """

    topic = "in-process"

    def __init__(
        self,
        rows: Iterator[tuple[int, str, Batch]],
        speed: str | Speed = "max",
        start_at: int = 0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._rows = rows
        self._speed = speed if isinstance(speed, Speed) else Speed.parse(speed)
        self._clock, self._sleep = clock, sleep
        self._next = start_at
        for _ in range(start_at):
            next(self._rows, None)
        self._peek: tuple[int, str, Batch] | None = next(self._rows, None)
        self.exhausted = self._peek is None
        self._t0 = clock()
        self._first_ts = self._peek[0] if self._peek else 0
        self._times = 0  # distinct bar times released
        self._last_ts: int | None = None

    @classmethod
    def from_memory(
        cls, data: Mapping[str, Batch], speed: str | Speed = "max", start_at: int = 0
    ) -> CatalogFeed:
        """A feed over bars held in memory (``symbol -> batch``)."""
        names = sorted(data)
        return cls(time_ordered_rows(aligned_batches(data, 10_000, names), names), speed, start_at)

    @classmethod
    def from_catalog(
        cls,
        catalog: Any,
        symbols: Sequence[str],
        interval: str,
        start: int | None = None,
        end: int | None = None,
        speed: str | Speed = "max",
        start_at: int = 0,
    ) -> CatalogFeed:
        """A feed of ``catalog``'s bars (a :class:`connectors.data.catalog.Catalog` or anything
        with its ``iter_batches``) from ``start`` to ``end``."""
        names = list(symbols)
        chunks = catalog.iter_batches(names, interval, start, end)
        return cls(time_ordered_rows(chunks, names), speed, start_at)

    def _due_in(self) -> float:
        assert self._peek is not None
        ts = self._peek[0]
        index = self._times + (0 if ts == self._last_ts or self._last_ts is None else 1)
        return self._t0 + self._speed.delay(ts, self._first_ts, index) - self._clock()

    def poll(self, max_messages: int, timeout: float) -> list[RawMessage]:
        """The bars that are due, up to ``max_messages``; waits up to ``timeout`` s for one."""
        out: list[RawMessage] = []
        if self._peek is None:
            return out
        wait = self._due_in()
        if wait > 0:
            if wait > timeout:
                self._sleep(max(timeout, 0.0))
                return out
            self._sleep(wait)
        while self._peek is not None and len(out) < max_messages and self._due_in() <= 0:
            ts, symbol, bar = self._peek
            if self._last_ts is not None and ts != self._last_ts:
                self._times += 1
            self._last_ts = ts
            out.append(RawMessage(0, self._next, symbol.encode(), None, [(symbol, bar)]))
            self._next += 1
            self._peek = next(self._rows, None)
        self.exhausted = self._peek is None
        return out

    def positions(self) -> dict[int, int]:
        """``{0: bars released}``."""
        return {0: self._next}

    def commit(self, positions: dict[int, int]) -> None:
        """Nothing to record outside the recovery state."""

    def status(self) -> str | None:
        """Always healthy."""
        return None

    def close(self) -> None:
        """Nothing to release."""


# -- Kafka --------------------------------------------------------------------------------


def kafka_config(brokers: str, timeout: float) -> dict[str, Any]:
    """Client settings shared by QMTL's producers, consumers and admin clients.

    >>> kafka_config("127.0.0.1:9092", 5.0)["bootstrap.servers"]
    '127.0.0.1:9092'
    """
    return {
        "bootstrap.servers": brokers,
        "socket.timeout.ms": int(timeout * 1000),
        "socket.nagle.disable": True,  # a bar or an order is one small message: send it now
        "logger": logging.getLogger("qmtl.kafka"),
    }


def ensure_topic(brokers: str, topic: str, timeout: float = 10.0, create: bool = True) -> int:
    """Partitions of ``topic``, creating it (1 partition) when missing and ``create``;
    :class:`FeedError` when the broker cannot be reached. A topic just created may take a
    moment to show in the broker's metadata: it is looked up again, backing off, for up to
    ``timeout`` s.

    >>> ensure_topic("127.0.0.1:1", "bars", timeout=0.2)
    Traceback (most recent call last):
    ...
    connectors.live.feeds.FeedError: cannot reach Kafka at 127.0.0.1:1: ...
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(kafka_config(brokers, timeout))
    n = _partitions(admin, brokers, topic, timeout)
    if n:
        return n
    if not create:
        raise FeedError(f"topic {topic!r} does not exist on {brokers}")
    futures = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    try:
        futures[topic].result(timeout)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise FeedError(f"cannot create topic {topic!r} on {brokers}: {exc}") from None
    log.info("created topic %s on %s", topic, brokers)
    visible = Retrying(
        retry=retry_if_result(lambda n: n == 0),
        stop=stop_after_delay(timeout),
        wait=wait_exponential(multiplier=0.02, max=0.5),
        retry_error_callback=lambda _state: 0,
    )
    n = visible(_partitions, admin, brokers, topic, timeout)
    if not n:
        raise FeedError(f"topic {topic!r} was created on {brokers} but did not show up "
                        f"in its metadata within {timeout:g} s")
    return n


def _partitions(admin: Any, brokers: str, topic: str, timeout: float) -> int:
    """Partitions of ``topic`` in the broker's metadata (0: no such topic)."""
    from confluent_kafka import KafkaException

    try:  # all topics: asking for one by name may auto-create it with the broker's defaults
        meta = admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise FeedError(f"cannot reach Kafka at {brokers}: {exc.args[0].str()}") from None
    info = meta.topics.get(topic)
    if info is not None and info.error is None and info.partitions:
        return len(info.partitions)
    return 0
