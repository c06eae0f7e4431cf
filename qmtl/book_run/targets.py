"""Where targets meet: every producer of a world's targets (a runner of many strategies, a
single live run) publishes :class:`TargetUpdate` records to one Kafka topic, ``targets``,
keyed by world, so a world's targets are in one partition in the order they were sent and
its book reads them alone. A record is one strategy's target weights at one bar, with the
bar's closes and the producer's seq (monotonic per strategy: the book drops a seq it has,
so a replay after a restart changes nothing). A JSON-lines file of the same records serves
too (:class:`FileTargets`: a test, a dry run).

>>> u = TargetUpdate(world="w", strategy_id="s", seq=3, ts=10, weights={"BTC/USDT": 0.5},
...                  prices={"BTC/USDT": 100.0})
>>> TargetUpdate.model_validate_json(u.model_dump_json()) == u
True
>>> TargetUpdate(world="w", strategy_id="s", seq=1, ts=1, weights={"X": float("nan")},
...              prices={})  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
pydantic_core._pydantic_core.ValidationError: 1 validation error for TargetUpdate
...
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, field_validator

from connectors.live.feeds import ensure_topic, kafka_config

TOPIC = "targets"


class TargetUpdate(BaseModel):
    """One strategy's target weights at one bar (see the module docstring)."""

    world: str
    strategy_id: str
    seq: int
    ts: int
    weights: dict[str, float]
    prices: dict[str, float]

    @field_validator("weights")
    @classmethod
    def _finite(cls, v: dict[str, float]) -> dict[str, float]:
        bad = sorted(s for s, w in v.items() if not math.isfinite(w))
        if bad:
            raise ValueError(f"weights must be finite; not for {', '.join(bad)}")
        return v

    @field_validator("prices")
    @classmethod
    def _positive(cls, v: dict[str, float]) -> dict[str, float]:
        bad = sorted(s for s, p in v.items() if not (math.isfinite(p) and p > 0))
        if bad:
            raise ValueError(f"prices must be finite and > 0; not for {', '.join(bad)}")
        return v


class FileTargets:
    """Target updates of one world from a JSON-lines file, read as it grows.

    >>> import tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "t.jsonl")
    >>> _ = open(p, "w").write('{"world":"w","strategy_id":"s","seq":1,"ts":1,'
    ...                        '"weights":{"X":1.0},"prices":{"X":2.0}}\\n')
    >>> [u.seq for u in FileTargets(p, "w").poll()]
    [1]
    """

    def __init__(self, path: str | Path, world: str) -> None:
        self.path, self.world, self._at = Path(path), world, 0

    def poll(self) -> list[TargetUpdate]:
        """The whole lines written since the last poll."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as f:
            f.seek(self._at)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self._at += end
        out = [
            TargetUpdate.model_validate_json(line)
            for line in data[:end].splitlines()
            if line.strip()
        ]
        return [u for u in out if u.world == self.world]

    def close(self) -> None:
        """Nothing to release."""


class KafkaTargets:
    """Target updates of one world from the ``targets`` topic (its key is the world). The
    offsets are kept under the world's book (group ``qmtl-book-WORLD``), committed after the
    updates were stored (:meth:`commit`), so a restarted book resumes where it committed."""

    def __init__(self, brokers: str, world: str, topic: str = TOPIC) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        n = ensure_topic(brokers, topic)
        self.world = world
        self._c = Consumer(
            {
                **kafka_config(brokers, 10.0),
                "group.id": f"qmtl-book-{world}",
                "enable.auto.commit": False,
            }
        )
        # assigned, not subscribed: one reader per world, no group rebalance to wait for;
        # it resumes at the offsets the book committed (from the start the first time)
        parts = [TopicPartition(topic, i) for i in range(n)]
        done = self._c.committed(parts, timeout=10.0)
        self._c.assign(
            [
                TopicPartition(topic, p.partition, p.offset if p.offset >= 0 else OFFSET_BEGINNING)
                for p in done
            ]
        )

    def poll(self, timeout: float = 0.2) -> list[TargetUpdate]:
        """The updates of this world that arrived (others' are skipped)."""
        out = []
        for msg in self._c.consume(500, timeout):
            if msg.error() is not None or (msg.key() or b"").decode() != self.world:
                continue
            out.append(TargetUpdate.model_validate_json(msg.value()))
        return out

    def commit(self) -> None:
        """Commit what was read (after it was stored)."""
        try:
            self._c.commit(asynchronous=False)
        except Exception:  # nothing to commit yet
            return

    def close(self) -> None:
        """Leave the group."""
        self._c.close()


class TargetPoster:
    """A live run's targets to the targets topic: called per bar row (strategy, symbol, ts,
    target weight, close), it publishes the strategy's latest weights and closes of every
    symbol it has seen, under ``seq = ts x 1024 + k`` (``k``: the rows at that ts so far),
    so a restarted run replaying bars publishes the same seqs and the book drops them.

    >>> sent = []
    >>> class P:
    ...     def produce(self, topic, key, value): sent.append((topic, key, value))
    ...     def poll(self, timeout): return 0
    >>> post = TargetPoster(P(), "w")
    >>> post("s", "A", 5, 0.5, 10.0); post("s", "B", 5, -0.2, 20.0)
    >>> u = TargetUpdate.model_validate_json(sent[-1][2])
    >>> (sent[-1][1], u.seq, u.weights, u.prices)
    (b'w', 5121, {'A': 0.5, 'B': -0.2}, {'A': 10.0, 'B': 20.0})
    """

    def __init__(self, producer: Any, world: str, topic: str = TOPIC) -> None:
        self.producer, self.world, self.topic = producer, world, topic
        self._w: dict[str, dict[str, float]] = {}
        self._p: dict[str, dict[str, float]] = {}
        self._at: dict[str, tuple[int, int]] = {}

    def __call__(self, strategy: str, symbol: str, ts: int, weight: float, close: float) -> None:
        """Publish the strategy's targets after one row (a row without a finite weight or a
        positive close is left out)."""
        if not (math.isfinite(weight) and math.isfinite(close) and close > 0):
            return
        self._w.setdefault(strategy, {})[symbol] = float(weight)
        self._p.setdefault(strategy, {})[symbol] = float(close)
        last, k = self._at.get(strategy, (ts, -1))
        k = k + 1 if last == ts else 0
        self._at[strategy] = (ts, k)
        publish_targets(
            self.producer,
            TargetUpdate(
                world=self.world,
                strategy_id=strategy,
                seq=ts * 1024 + k,
                ts=ts,
                weights=dict(self._w[strategy]),
                prices=dict(self._p[strategy]),
            ),
            self.topic,
        )
        self.producer.poll(0)


def publish_targets(producer: Any, update: TargetUpdate, topic: str = TOPIC) -> None:
    """Publish one update on a confluent-kafka ``producer``, keyed by its world."""
    producer.produce(topic, key=update.world.encode(), value=update.model_dump_json().encode())


def updates_of(lines: Iterator[str]) -> list[TargetUpdate]:
    """Updates from JSON lines (blank lines skipped).

    >>> updates_of(iter(['{"world":"w","strategy_id":"s","seq":1,"ts":1,"weights":{},'
    ...                  '"prices":{}}', '']))[0].strategy_id
    's'
    """
    return [TargetUpdate.model_validate(json.loads(x)) for x in lines if x.strip()]
