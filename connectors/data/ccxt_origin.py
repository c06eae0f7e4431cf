"""Backfill from crypto exchanges through ccxt (``pip install 'qmtl[ccxt]'``).

ccxt's ``fetch_ohlcv(symbol, timeframe, since, limit)`` returns rows
``[open time in ms, open, high, low, close, volume]``, stamped at the bar's **open**, at most
``limit`` per call. QMTL stamps bars at their close, so a row becomes a bar at
``(open_ms + interval) * 10**6`` ns. A range is fetched page by page from its start, each page
asking from just after the previous one's last bar; a bar that has not closed yet (its close is
after ``now``) is not served. Network errors are retried with exponential backoff.

QMTL symbols cannot contain ``/``: ``BTC-USDT`` (or ``BTC_USDT``) is asked as ``BTC/USDT``;
pass ``symbol_map`` for anything else.

>>> class Fake:                       # the documented shape of a ccxt exchange
...     id = "fake"
...     timeframes = {"1m": "1m"}
...     def fetch_ohlcv(self, symbol, timeframe="1m", since=None, limit=None):
...         return [[t, 1.0, 2.0, 0.5, 1.5, 10.0] for t in range(since, since + 3 * 60_000, 60_000)]
>>> origin = CcxtOrigin(Fake(), limit=3)
>>> bars = list(origin.fetch("BTC-USDT", "1m", 60 * 10**9, 4 * 60 * 10**9))
>>> [b["ts"].tolist() for b in bars]
[[60000000000, 120000000000, 180000000000], [240000000000]]
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from connectors.data.origins import OriginError, SymbolNotFound
from qmtl.core.bars import Batch
from qmtl.core.intervals import interval_ns

NS_PER_MS = 1_000_000


def ohlcv_to_bars(rows: Sequence[Sequence[Any]], interval: str) -> Batch:
    """ccxt OHLCV rows (open time in ms) -> a bar batch stamped at close, in ns.

    ``None`` prices become NaN (validation then names the bar); a ``None`` volume becomes 0.

    >>> b = ohlcv_to_bars([[1_700_000_000_000, 1, 2, 0.5, 1.5, None]], "1m")
    >>> b["ts"].tolist(), b["close"].tolist(), b["volume"].tolist()
    ([1700000060000000000], [1.5], [0.0])
    """
    step = interval_ns(interval)
    if not len(rows):
        out = {c: np.empty(0) for c in ("open", "high", "low", "close", "volume")}
        return {"ts": np.empty(0, dtype=np.int64), **out}
    opens = np.array([int(r[0]) for r in rows], dtype=np.int64)
    values = np.array(
        [[np.nan if v is None else float(v) for v in r[1:6]] for r in rows], dtype=np.float64
    )
    if values.shape[1] != 5:
        raise ValueError(f"ccxt OHLCV rows need 6 fields, got {len(rows[0])}")
    volume = np.nan_to_num(values[:, 4], nan=0.0)
    order = np.argsort(opens, kind="stable")
    return {
        "ts": (opens * NS_PER_MS + step)[order],
        "open": values[order, 0],
        "high": values[order, 1],
        "low": values[order, 2],
        "close": values[order, 3],
        "volume": volume[order],
    }


def default_symbol_map(symbol: str) -> str:
    """``BTC-USDT`` / ``BTC_USDT`` -> ``BTC/USDT``; a name with ``/`` is kept.

    >>> default_symbol_map("ETH-USDT"), default_symbol_map("BTC_USD")
    ('ETH/USDT', 'BTC/USD')
    """
    for sep in ("-", "_"):
        if sep in symbol:
            base, _, quote = symbol.partition(sep)
            return f"{base}/{quote}"
    return symbol


def _network_errors() -> tuple[type[BaseException], ...]:
    try:
        import ccxt  # type: ignore[import-not-found]

        return (ccxt.NetworkError, ConnectionError, TimeoutError)
    except ImportError:
        return (ConnectionError, TimeoutError)


class CcxtOrigin:
    """Backfill origin over a ccxt exchange (an instance, or an id such as ``"binance"``)."""

    def __init__(
        self,
        exchange: Any,
        *,
        limit: int = 1000,
        symbol_map: Callable[[str], str] | Mapping[str, str] | None = None,
        retries: int = 3,
        backoff: float = 1.0,
        clock: Callable[[], int] = time.time_ns,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if isinstance(exchange, str):
            try:
                import ccxt  # type: ignore[import-not-found]
            except ImportError:
                raise ImportError(
                    "the ccxt origin needs ccxt: pip install 'qmtl[ccxt]'"
                ) from None
            if not hasattr(ccxt, exchange):
                raise ValueError(f"ccxt has no exchange {exchange!r}")
            exchange = getattr(ccxt, exchange)({"enableRateLimit": True})
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self.exchange = exchange
        self.limit = int(limit)
        self.retries = int(retries)
        self.backoff = float(backoff)
        self.clock = clock
        self.sleep = sleep
        self._map = symbol_map
        self.name = f"ccxt:{getattr(exchange, 'id', type(exchange).__name__)}"

    def market(self, symbol: str) -> str:
        """The exchange's name for a QMTL symbol."""
        if self._map is None:
            return default_symbol_map(symbol)
        if isinstance(self._map, Mapping):
            return self._map.get(symbol, default_symbol_map(symbol))
        return self._map(symbol)

    def _timeframe(self, interval: str) -> str:
        frames = getattr(self.exchange, "timeframes", None)
        if isinstance(frames, Mapping) and frames and interval not in frames:
            raise SymbolNotFound(
                f"origin {self.name} has no {interval} timeframe; it has {', '.join(frames)}"
            )
        return interval

    def _call(self, market: str, timeframe: str, since: int) -> list[Any]:
        """One page from the exchange; network errors are retried ``retries`` times, waiting
        ``backoff * 2**k`` seconds before retry ``k`` (``tenacity``)."""
        retrying = Retrying(
            retry=retry_if_exception_type(_network_errors()),
            stop=stop_after_attempt(self.retries + 1),
            wait=wait_exponential(multiplier=self.backoff, exp_base=2),
            sleep=self.sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    return list(self.exchange.fetch_ohlcv(market, timeframe, since, self.limit)
                                or [])
        except Exception as exc:
            bad_symbol = type(exc).__name__ in ("BadSymbol", "BadRequest")
            if bad_symbol and "symbol" in str(exc).lower():
                raise SymbolNotFound(f"origin {self.name}: {market!r}: {exc}") from None
            raise
        return []  # pragma: no cover - the loop returns or raises

    def fetch(self, symbol: str, interval: str, start: int, end: int) -> Iterator[Batch]:
        """Bars with ``start <= ts <= end`` that have closed, page by page."""
        timeframe = self._timeframe(interval)
        return self._pages(self.market(symbol), interval, timeframe, start, end)

    def _pages(
        self, market: str, interval: str, timeframe: str, start: int, end: int
    ) -> Iterator[Batch]:
        step_ms = interval_ns(interval) // NS_PER_MS
        closed_until = min(end, self.clock())
        since = -(-start // NS_PER_MS) - step_ms  # open time of the first bar closing >= start
        while True:
            try:
                rows = self._call(market, timeframe, since)
            except SymbolNotFound:
                raise
            except Exception as exc:
                raise OriginError(f"origin {self.name}: fetch_ohlcv({market!r}, {timeframe!r}, "
                                  f"since={since}) failed: {type(exc).__name__}: {exc}") from exc
            if not rows:
                return
            bars = ohlcv_to_bars(rows, interval)
            keep = (bars["ts"] >= start) & (bars["ts"] <= closed_until)
            if keep.any():
                yield {k: v[keep] for k, v in bars.items()}
            last_open = int(bars["ts"][-1] // NS_PER_MS - step_ms)
            if last_open < since or (last_open + step_ms) * NS_PER_MS >= closed_until:
                return
            since = last_open + step_ms
