"""What a live feed carries, made into bars of the strategy's interval inside the flow.

A feed carries either **bars** of the strategy's interval (used as they are), **finer bars**
(``feed_interval``, e.g. 1m bars for a 1h strategy: resampled per symbol by the catalog's
resampler, :class:`dataflows.resample.Resampler`), or **trades** (aggregated per symbol by
event time, :class:`dataflows.trade_bars.TradeBars`, with the allowed lateness, the late
rule and the empty-interval rule). The assembler's state is part of the live source's
recovery snapshot, taken with the feed's offsets, so a restarted run goes on without losing
or repeating a trade or a bar.

>>> from connectors.live.trade_codec import encode_trade
>>> a = FeedAssembler.for_trades("1m", lateness=0)
>>> a.decode(b"X", encode_trade({"ts": 30 * 10**9, "price": 2.0, "size": 1.0}))
[]
>>> [(s, b["ts"].tolist()) for s, b in a.decode(b"X", encode_trade(
...     {"ts": 61 * 10**9, "price": 3.0, "size": 1.0}))]
[('X', [60000000000])]
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from connectors.live.bar_codec import BadMessage, decode_message
from connectors.live.trade_codec import decode_trades
from dataflows.resample import Resampler
from dataflows.trade_bars import COUNTS, TradeBars
from qmtl.core.bars import Batch
from qmtl.core.intervals import interval_ns

log = logging.getLogger("qmtl.live")
FEED_KINDS = ("bars", "trades")


@dataclass
class FeedAssembler:
    """Per-symbol operators turning feed messages into bars of ``interval``.

    ``kind``: ``trades`` or ``bars``; ``feed_interval``: the feed's bars when finer than
    ``interval`` (bars only); ``lateness`` (ns), ``late`` and ``empty``: the trade rules
    (see :mod:`dataflows.trade_bars`).

    >>> FeedAssembler("1h", "bars", feed_interval="1m").resampling
    True
    >>> FeedAssembler("1m", "bars", feed_interval="1h")
    Traceback (most recent call last):
    ...
    ValueError: cannot resample 1h bars into 1m bars: 1m is not a whole multiple of 1h
    """

    interval: str
    kind: str = "bars"
    feed_interval: str | None = None
    lateness: int = 0
    late: str = "drop"
    empty: str = "skip"
    _ops: dict[str, Any] = field(default_factory=dict)
    _reported: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.kind not in FEED_KINDS:
            raise ValueError(f"feed kind must be bars or trades, got {self.kind!r}")
        if self.kind == "bars" and self.feed_interval:
            Resampler(self.feed_interval, self.interval)  # checks the intervals
        TradeBars(self.interval, self.lateness, late=self.late, empty=self.empty)

    @classmethod
    def for_trades(
        cls, interval: str, lateness: int = 0, late: str = "drop", empty: str = "skip"
    ) -> FeedAssembler:
        """An assembler of trades into ``interval`` bars (see the module docstring)."""
        return cls(interval, "trades", None, lateness, late, empty)

    @property
    def resampling(self) -> bool:
        """Whether feed bars are resampled (finer than the strategy's interval)."""
        return (
            self.kind == "bars"
            and bool(self.feed_interval)
            and (interval_ns(self.feed_interval or self.interval) != interval_ns(self.interval))
        )

    @property
    def active(self) -> bool:
        """Whether the assembler changes anything (trades, or finer bars).

        >>> FeedAssembler("1d").active
        False
        """
        return self.kind == "trades" or self.resampling

    def _op(self, symbol: str) -> Any:
        op = self._ops.get(symbol)
        if op is None:
            if self.kind == "trades":
                op = TradeBars(self.interval, self.lateness, late=self.late, empty=self.empty)
            else:
                op = Resampler(self.feed_interval or self.interval, self.interval)
            self._ops[symbol] = op
        return op

    def decode(self, key: bytes | None, value: bytes | None) -> list[tuple[str, Batch]]:
        """The bars of ``interval`` a message closes (maybe none); :class:`BadMessage` for
        a message that is not a trade (or bar) of the feed."""
        if self.kind == "trades":
            return self.trades(decode_trades(key, value))
        return self.bars(decode_message(key, value))

    def trades(self, parts: list[tuple[str, Batch]]) -> list[tuple[str, Batch]]:
        """The bars these ``(symbol, trades)`` close."""
        out = []
        for symbol, trades in parts:
            op = self._op(symbol)
            bars = op.add(trades)
            self._report(symbol, op)
            if len(bars["ts"]):
                out.append((symbol, bars))
        return out

    def bars(self, parts: list[tuple[str, Batch]]) -> list[tuple[str, Batch]]:
        """The coarse bars these ``(symbol, feed bars)`` close (rows out of order or
        repeated are a bad message, as on a bar feed)."""
        if not self.resampling:
            return parts
        out = []
        for symbol, bars in parts:
            op = self._op(symbol)
            last = op._last_ts
            fresh = bars if last is None else {k: v[bars["ts"] > last] for k, v in bars.items()}
            if len(fresh["ts"]) < len(bars["ts"]):
                raise BadMessage(
                    f"{len(bars['ts']) - len(fresh['ts'])} {self.feed_interval} "
                    f"bars of {symbol} at or before the last one"
                )
            try:
                coarse = op.update(fresh)
            except ValueError as exc:
                raise BadMessage(f"{symbol}: {exc}") from None
            if len(coarse["ts"]):
                out.append((symbol, coarse))
        return out

    def _report(self, symbol: str, op: TradeBars) -> None:
        """Late trades and repeats are logged as they are counted (never silently)."""
        seen = op.counts["late_dropped"] + op.counts["late_folded"] + op.counts["duplicates"]
        if seen > self._reported.get(symbol, 0):
            c = op.counts
            log.warning(
                "%s: %d late trades (%d dropped, %d folded), %d repeated ids so far",
                symbol,
                c["late_dropped"] + c["late_folded"],
                c["late_dropped"],
                c["late_folded"],
                c["duplicates"],
            )
            self._reported[symbol] = seen

    def counts(self) -> dict[str, int]:
        """The trade counters summed over symbols (all 0 for a bar feed).

        >>> FeedAssembler("1m", "trades").counts()["late_dropped"]
        0
        """
        total = dict.fromkeys(COUNTS, 0)
        for op in self._ops.values():
            for k, v in getattr(op, "counts", {}).items():
                total[k] += v
        return total

    def state(self) -> dict[str, Any]:
        """Each symbol's operator state, for the live source's snapshot."""
        out: dict[str, Any] = {}
        for symbol, op in self._ops.items():
            if isinstance(op, TradeBars):
                out[symbol] = op.state()
            else:
                out[symbol] = {
                    "pending": {k: v.copy() for k, v in op._pending.items()},
                    "last_ts": op._last_ts,
                }
        return out

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state`.

        >>> import numpy as np
        >>> a = FeedAssembler("1h", "bars", feed_interval="1m")
        >>> one = {"ts": np.array([60 * 10**9]), **{c: np.ones(1) for c in
        ...        ("open", "high", "low", "close", "volume")}}
        >>> _ = a.bars([("X", one)]); b = FeedAssembler("1h", "bars", feed_interval="1m")
        >>> b.restore(a.state()); b._ops["X"]._last_ts
        60000000000
        """
        self._ops = {}
        for symbol, s in state.items():
            op = self._op(symbol)
            if isinstance(op, TradeBars):
                op.restore(s)
            else:
                op._pending, op._last_ts = s["pending"], s["last_ts"]
