"""The live run's Bytewax source: history warm-up, then a feed, handed over without gap or
duplicate, with bad messages routed to a dead-letter stream.

Items are ``("bar", (symbol, batch))`` or ``("dlq", record)``. First the warm-up bars
(history, time-aligned, in large batches), then what the feed delivers, grouped per symbol
per poll (live sources emit what arrived; results do not depend on the grouping).

The hand-off, per symbol: a feed bar at or before the end of that symbol's history (or
before ``start``) was already used or is not wanted, and is skipped (counted as overlap);
the first bar after it must follow the history's last bar on the interval grid. A gap is
first filled from ``fill_gap`` (the data provider: the catalog, updated since the run
started, or a backfill origin) and otherwise stops the run with an error naming the gap
(``max_gap_bars`` tolerates that many missing bars). After the
hand-off, a bar whose ``ts`` does not move forward is a duplicate or out of order: it goes
to the dead-letter stream, as do malformed messages and bars of symbols outside the
universe. The run goes on.

The source's recovery state (:class:`dataflows.recovery.SourceState`) is the feed's positions,
each symbol's last bar time and how far the warm-up got, so a restarted run reads on from
its last snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition

from connectors.data.memory import aligned_batches
from connectors.data.quality import Calendar, find_gaps
from connectors.live.bar_codec import BadMessage, dead_letter, decode_message
from connectors.live.feeds import Feed, RawMessage
from dataflows.control import RunControl
from dataflows.recovery import SourceState
from qmtl.core.bars import Batch, concat_batches, validate_bars
from qmtl.core.errors import QmtlError
from qmtl.core.times import format_ts

log = logging.getLogger("qmtl.live")
Item = tuple[str, Any]


class HandOffGap(QmtlError, RuntimeError):
    """Bars are missing between a symbol's history and its first live bar.

    >>> isinstance(HandOffGap("AAA: gap between history and the live feed"), RuntimeError)
    True
    """


@dataclass
class LiveStats:
    """Counters of a live run's input, shared with the runner (for logs and tests).

    >>> s = LiveStats(); s.dead("duplicate ts 2024-01-02 of A"); s.dead("unknown symbol 'Z'")
    >>> s.dead_letters, s.by_reason
    (2, {'duplicate ts 2024-01-02 of A': 1, "unknown symbol 'Z'": 1})
    """

    live_bars: int = 0
    warmup_bars: int = 0
    overlap: int = 0
    gap_filled: int = 0
    dead_letters: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    first_message: float | None = None
    finished: float | None = None
    last_bar: int | None = None  # the latest live bar's time (epoch ns), for a runner's lag
    lock: threading.Lock = field(default_factory=threading.Lock)
    feed: Any = None  # the FeedAssembler, whose counts() tell late and repeated trades

    @property
    def rate(self) -> float | None:
        """Live bars per second from the first message to the end of the run."""
        if self.first_message is None or self.finished is None or not self.live_bars:
            return None
        return self.live_bars / max(self.finished - self.first_message, 1e-9)

    def dead(self, reason: str) -> None:
        """Count one dead letter under the first words of its reason."""
        kind = reason.split(":")[0].split(" (")[0]
        with self.lock:
            self.dead_letters += 1
            self.by_reason[kind] = self.by_reason.get(kind, 0) + 1


@dataclass
class LiveInput:
    """What the live source needs besides the feed.

    ``history``: warm-up bars per symbol (may be empty); ``history_end``: per symbol, the
    last bar time already accounted for (the end of history); ``fill_gap(symbol, after,
    before)``: bars strictly between two times, from wherever history comes from.

    >>> LiveInput(["A"], interval_ns=60 * 10**9).poll_max
    10000
    """

    symbols: Sequence[str]
    interval_ns: int
    history: Mapping[str, Batch] = field(default_factory=dict)
    history_end: Mapping[str, int] = field(default_factory=dict)
    fill_gap: Callable[[str, int, int], Batch | None] | None = None
    max_gap_bars: int = 0
    calendars: Mapping[str, Any] = field(default_factory=dict)
    start: int | None = None
    max_bars: int | None = None
    stop_after_idle: float | None = None
    poll_max: int = 10_000
    poll_timeout: float = 0.05
    assembler: Any = None
    """A :class:`connectors.live.assembler.FeedAssembler` when the feed carries trades or
    finer bars (None: bars of the interval)."""


class _LivePartition(StatefulSourcePartition[Item, dict[str, Any]]):
    def __init__(
        self,
        feed: Feed,
        spec: LiveInput,
        control: RunControl,
        stats: LiveStats,
        resume: dict[str, Any] | None,
    ) -> None:
        self.feed = feed
        self.spec = spec
        self.control = control
        self.stats = stats
        self.universe = set(spec.symbols)
        self.state = SourceState.restore(resume, spec.history_end)
        stats.live_bars = self.state.live_bars
        self.assembler = spec.assembler if spec.assembler is not None and (
            spec.assembler.active) else None
        if self.assembler is not None:
            self.assembler.restore((resume or {}).get("assembler", {}))
        self._warmup = list(aligned_batches(spec.history, 10_000, sorted(spec.history)))
        self._done = False
        self._idle_since = time.monotonic()
        self._reported: str | None = None

    # -- Bytewax ---------------------------------------------------------------------------
    def next_batch(self) -> list[Item]:
        if self._done or self.control.failed or self.control.stopping:
            self._done = True
            raise StopIteration
        if self.state.warm_items < len(self._warmup):
            symbol, batch = self._warmup[self.state.warm_items]
            self.state.warm_items += 1
            self.stats.warmup_bars += len(batch["ts"])
            return [("bar", (symbol, batch))]
        try:
            return self._read()
        except HandOffGap as exc:
            self.control.fail(exc)
            self._done = True
            return []

    def snapshot(self) -> dict[str, Any]:
        positions = self.feed.positions()
        self.feed.commit(positions)
        snap = self.state.snapshot(positions)
        if self.assembler is not None:  # trades or finer bars not yet in a closed bar
            snap["assembler"] = self.assembler.state()
        return snap

    def close(self) -> None:
        self.feed.close()

    # -- reading ---------------------------------------------------------------------------
    def _read(self) -> list[Item]:
        spec = self.spec
        limit = spec.poll_max
        if spec.max_bars is not None:
            limit = min(limit, spec.max_bars - self.state.live_bars)
            if limit <= 0:
                self._done = True
                return []
        messages = self.feed.poll(limit, spec.poll_timeout)
        self._report_health()
        now = time.monotonic()
        if not messages:
            if self.feed.exhausted:
                self._done = True
            elif spec.stop_after_idle is not None and now - self._idle_since > spec.stop_after_idle:
                log.info("no bars for %.1f s: stopping (--stop-after-idle)", spec.stop_after_idle)
                self._done = True
            return []
        self._idle_since = now
        if self.stats.first_message is None:
            self.stats.first_message = now
        items: list[Item] = []
        accepted: dict[str, list[Batch]] = {}
        for msg in messages:
            for symbol, batch in self._decode(msg, items):
                for part in self._screen(msg, symbol, batch, items):
                    accepted.setdefault(symbol, []).append(part)
        for symbol, parts in accepted.items():
            batch = parts[0] if len(parts) == 1 else concat_batches(parts)
            items.append(("bar", (symbol, batch)))
        return items

    def _report_health(self) -> None:
        status = self.feed.status()
        if status != self._reported:
            if status is not None:
                log.warning("feed %s: %s; waiting for it to come back", self.feed.topic, status)
            self._reported = status

    def _dead(self, msg: RawMessage, reason: str, items: list[Item]) -> None:
        where = f"{self.feed.topic}[{msg.partition}]@{msg.offset}"
        log.warning("%s: %s -> %s.dlq", where, reason, self.feed.topic)
        self.stats.dead(reason)
        items.append(
            (
                "dlq",
                dead_letter(self.feed.topic, msg.partition, msg.offset, msg.key, msg.value, reason),
            )
        )

    def _decode(self, msg: RawMessage, items: list[Item]) -> list[tuple[str, Batch]]:
        a = self.assembler
        if msg.trades is not None:  # an in-process trade feed (the exchange's)
            if a is None or a.kind != "trades":
                self._dead(msg, "trades on a feed of bars (run with --feed trades)", items)
                return []
            return a.trades(msg.trades)
        if msg.bars is not None:
            return msg.bars if a is None or a.kind == "trades" else a.bars(msg.bars)
        try:
            if a is not None:
                return a.decode(msg.key, msg.value)
            return decode_message(msg.key, msg.value)
        except BadMessage as exc:
            self._dead(msg, str(exc), items)
            return []

    def _screen(self, msg: RawMessage, symbol: str, batch: Batch, items: list[Item]) -> list[Batch]:
        """The rows of ``batch`` to use (after filling a hand-off gap); the rest are
        skipped (overlap with history) or sent to the dead-letter stream."""
        if symbol not in self.universe:
            names = ", ".join(sorted(self.universe))
            self._dead(msg, f"unknown symbol {symbol!r} (universe: {names})", items)
            return []
        ts = batch["ts"]
        end = self.spec.history_end.get(symbol)
        if self.spec.start is not None and symbol not in self.state.handed_off:
            end = max(end, self.spec.start - 1) if end is not None else self.spec.start - 1
        if end is not None and symbol not in self.state.handed_off:
            fresh = ts > end
            self.stats.overlap += int(len(ts) - fresh.sum())
            if not fresh.any():
                return []
            batch = {k: v[fresh] for k, v in batch.items()}
        if len(batch["ts"]) == 1:  # the usual live case: plain comparisons
            t = int(batch["ts"][0])
            last = self.state.last_ts.get(symbol)
            if last is not None and t <= last:
                what = "duplicate ts" if t == last else "out-of-order ts"
                self._dead(
                    msg, f"{what} {format_ts(t)} of {symbol} (last bar {format_ts(last)})", items
                )
                return []
        out: list[Batch] = []
        if symbol not in self.state.handed_off:
            out += self._fill_gap(symbol, int(batch["ts"][0]))
            self.state.handed_off.add(symbol)
        last = self.state.last_ts.get(symbol)
        good, dropped = validate_bars(symbol, batch, last_ts=last, on_bad="drop")
        if dropped:
            try:
                validate_bars(symbol, batch, last_ts=last)
            except ValueError as exc:
                self._dead(
                    msg, f"{dropped} of {len(batch['ts'])} bars dropped, first: {exc}", items
                )
        n = len(good["ts"])
        if n:
            if self.spec.max_bars is not None:
                room = self.spec.max_bars - self.state.live_bars
                if n > room:
                    good = {k: v[:room] for k, v in good.items()}
                    n = room
            self.state.last_ts[symbol] = int(good["ts"][-1])
            self.state.live_bars += n
            self.stats.last_bar = max(self.stats.last_bar or 0, int(good["ts"][-1]))
            self.stats.live_bars = self.state.live_bars
            out.append(good)
        return out

    def _calendar(self, symbol: str) -> Calendar:
        """The calendar ``symbol``'s gaps are judged on (24/7 unless one is given)."""
        return self.spec.calendars.get(symbol) or Calendar.parse("24/7")

    def _missing(self, symbol: str, end: int, first: int) -> int:
        """Bars the symbol's calendar expects strictly between ``end`` and ``first`` (a
        weekday market skips weekends; 24/7 by default)."""
        interval = f"{self.spec.interval_ns // 10**9}s"
        gaps = find_gaps(np.array([end, first], dtype=np.int64), interval,
                         self._calendar(symbol))
        return sum(g.count for g in gaps)

    def _fill_gap(self, symbol: str, first: int) -> list[Batch]:
        """Bars between the end of ``symbol``'s history and its first live bar at ``first``."""
        end = self.state.last_ts.get(symbol)
        step = self.spec.interval_ns
        if end is None or first - end <= step or self._missing(symbol, end, first) <= (
            self.spec.max_gap_bars
        ):
            return []
        filled = None
        if self.spec.fill_gap is not None:
            filled = self.spec.fill_gap(symbol, end, first)
        if filled is not None and len(filled["ts"]):
            filled, _ = validate_bars(symbol, filled, last_ts=end, on_bad="drop")
            filled = {k: v[filled["ts"] < first] for k, v in filled.items()}
        if filled is not None and len(filled["ts"]):
            self.stats.gap_filled += len(filled["ts"])
            log.info(
                "%s: filled %d bars between history and the first live bar from history",
                symbol,
                len(filled["ts"]),
            )
            self.state.last_ts[symbol] = int(filled["ts"][-1])
            end = self.state.last_ts[symbol]
        missing = self._missing(symbol, end, first)
        if missing > self.spec.max_gap_bars:
            raise HandOffGap(
                f"{symbol}: gap between history and the live feed: the last bar before it is "
                f"at {format_ts(end)}, the first live bar at {format_ts(first)} "
                f"({missing} bars of {step // 10**9}s missing on the "
                f"{self._calendar(symbol).describe()} calendar); backfill the catalog "
                "(qmtl data backfill), or, when the market was closed, name its calendar "
                "(--calendar XNYS, fx, crypto; as qmtl data check), or allow it with "
                "--max-gap-bars"
            )
        return [filled] if filled is not None and len(filled["ts"]) else []


class LiveBarSource(FixedPartitionedSource[Item, dict[str, Any]]):
    """One partition reading ``make_feed(positions)`` after the warm-up (see the module
    docstring).

    >>> from connectors.live.feeds import CatalogFeed
    >>> src = LiveBarSource(lambda positions: CatalogFeed.from_memory({}), LiveInput(["A"], 1),
    ...                     RunControl())
    >>> src.list_parts()
    ['live']
    """

    def __init__(
        self,
        make_feed: Callable[[dict[int, int] | None], Feed],
        spec: LiveInput,
        control: RunControl,
        stats: LiveStats | None = None,
    ) -> None:
        self.make_feed = make_feed
        self.spec = spec
        self.control = control
        self.stats = stats or LiveStats()

    def list_parts(self) -> list[str]:
        """One reader: the hand-off from history is decided in one place."""
        return ["live"]

    def build_part(
        self, step_id: str, for_part: str, resume_state: dict[str, Any] | None
    ) -> _LivePartition:
        """Open the feed at the resumed positions (or from the start)."""
        positions = None if resume_state is None else resume_state.get("positions")
        if resume_state is not None:
            log.info("resuming from the last snapshot: %d live bars done, feed positions %s",
                     resume_state.get("live_bars", 0), positions)
        feed = self.make_feed(positions)
        return _LivePartition(feed, self.spec, self.control, self.stats, resume_state)


def history_tail(batch: Batch, n: int, before: int | None = None) -> Batch:
    """The last ``n`` bars of ``batch`` with ``ts <= before``.

    >>> b = {"ts": np.arange(1, 6)}
    >>> history_tail(b, 2, before=4)["ts"].tolist()
    [3, 4]
    """
    ts = batch["ts"]
    stop = len(ts) if before is None else int(np.searchsorted(ts, before, side="right"))
    return {k: v[max(0, stop - n) : stop] for k, v in batch.items()}
