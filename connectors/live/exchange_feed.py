"""Closed bars from a crypto exchange through ccxt: websocket where the exchange has it
(``ccxt.pro``'s ``watch_ohlcv``), REST polling otherwise, with the missed interval backfilled
from REST after every reconnect, so the bars come out without a gap and without a duplicate.

Per symbol the feed keeps the open time of the last bar it emitted. It first pages
``fetch_ohlcv`` from there up to the exchange's time (``fetch_time``; a bar counts as closed
once its close is at or before it), then watches the kline stream: a candle is closed when a
later one has appeared, and its values are ccxt's cached ones (the last update before it
closed). A candle after a missing one (the stream was down while bars closed), or one not
updated since the stream reconnected (its final value may have been lost with the old
connection), sends the feed back to REST first. A network error (a dropped
connection, a refused reconnect, a rate limit: ``ccxt.NetworkError`` and its subclasses)
waits ``backoff`` seconds, doubling up to ``max_backoff``, then backfills and reconnects.
REST calls are paced by ccxt's own rate limiter (``enableRateLimit``) and ``limit`` rows a
page. Bars are stamped at their close
(:func:`connectors.data.ccxt_origin.ohlcv_to_bars`).

:class:`ExchangeBarFeed` runs it in a thread as a live run's :class:`~connectors.live.feeds.Feed`
(``qmtl run --mode live --source ccxt:binance``); ``qmtl feed ccxt:...`` publishes it to Kafka
and writes it to the catalog.

>>> qmtl_symbol("BTC/USDT"), market_name("BTC-USDT")
('BTC-USDT', 'BTC/USDT')
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from connectors.data.ccxt_origin import default_symbol_map, ohlcv_to_bars
from connectors.live.feeds import RawMessage
from qmtl.core.bars import Batch
from qmtl.core.intervals import interval_ns

log = logging.getLogger("qmtl.feed")
NS_PER_MS = 1_000_000
Emit = Callable[[str, Batch], None]


def qmtl_symbol(market: str) -> str:
    """A QMTL (catalog) symbol for an exchange market: ``/`` becomes ``-``."""
    return market.replace("/", "-")


def market_name(symbol: str) -> str:
    """The exchange market of a QMTL symbol (``BTC-USDT`` -> ``BTC/USDT``)."""
    return default_symbol_map(symbol)


def make_exchange(spec: str, urls: dict[str, Any] | None = None, pro: bool = True) -> Any:
    """A ccxt exchange (async: ``ccxt.pro`` when it has the exchange) from ``ccxt:ID``
    or ``ID``; ``urls`` overrides ``exchange.urls['api']`` (a local server in tests).

    >>> make_exchange("ccxt:nosuchexchange")
    Traceback (most recent call last):
    ...
    ValueError: ccxt has no exchange 'nosuchexchange'
    """
    name = spec.removeprefix("ccxt:")
    try:
        import ccxt.async_support as ccxt_async
        import ccxt.pro as ccxt_pro
    except ImportError:
        raise ImportError("the exchange feed needs ccxt: pip install 'qmtl[ccxt]'") from None
    module = ccxt_pro if pro and hasattr(ccxt_pro, name) else ccxt_async
    if not hasattr(module, name):
        raise ValueError(f"ccxt has no exchange {name!r}")
    options = {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False}
    exchange = getattr(module, name)({"enableRateLimit": True, "options": options})
    if urls:
        api = exchange.urls["api"]
        for k, v in urls.items():
            api[k] = {**api.get(k, {}), **v} if isinstance(v, dict) else v
    return exchange


def _network_errors() -> tuple[type[BaseException], ...]:
    import ccxt

    return (ccxt.NetworkError, ConnectionError, TimeoutError, OSError)


class ReconnectingFeed:
    """What an exchange feed of bars and one of trades share: every market fed by its own
    loop of sessions (:meth:`_session`: the REST catch-up, then the stream or a poll); a
    network error is logged, and the session opened again after a doubling wait (to
    ``max_backoff``), until :meth:`stop`. A subclass sets ``exchange``, ``backoff``,
    ``max_backoff``, ``stopped``, ``reconnects`` and what it feeds (``_what``, ``_missed``).

    >>> ReconnectingFeed._missed
    'bars'
    """

    _what = ""  # after the market in the log line
    _missed = "bars"  # what REST catches up after a reconnect
    exchange: Any
    backoff: float
    max_backoff: float
    stopped: asyncio.Event
    reconnects: int

    async def run(self, emit: Emit) -> None:
        """Feed every market until :meth:`stop`."""
        try:
            await self.exchange.load_markets()
            await asyncio.gather(*(self._market(m, emit) for m in self.markets))
        finally:
            await self.exchange.close()

    def stop(self) -> None:
        """End :meth:`run` (from the loop's thread)."""
        self.stopped.set()

    async def _market(self, market: str, emit: Emit) -> None:
        wait = self.backoff
        while not self.stopped.is_set():
            try:
                await self._session(market, emit)
                wait = self.backoff
            except asyncio.CancelledError:
                raise
            except _network_errors() as exc:
                self.reconnects += 1
                log.warning(
                    "%s %s%s: %s: %s; again in %.1f s (then the missed %s from REST)",
                    self.exchange.id,
                    market,
                    self._what,
                    type(exc).__name__,
                    exc,
                    wait,
                    self._missed,
                )
                await self._sleep(wait)
                wait = min(wait * 2, self.max_backoff)

    async def _sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopped.wait(), seconds)
        except TimeoutError:
            pass

    async def _session(self, market: str, emit: Emit) -> None:
        raise NotImplementedError


class ExchangeFeed(ReconnectingFeed):
    """Closed bars of ``interval`` for ``markets`` (exchange names, ``BTC/USDT``) from
    ``exchange`` (an async ccxt exchange), each from its bar closing at or after ``start``
    (ns, per market or one for all). ``websocket``: None uses it when the exchange has
    ``watchOHLCV``. ``emit(qmtl_symbol, bars)`` gets every bar once, in time order.

    >>> ExchangeFeed(None, ["BTC/USDT"], "1m", start=0).last_open["BTC/USDT"]
    -120000
    """

    def __init__(
        self,
        exchange: Any,
        markets: Sequence[str],
        interval: str,
        start: int | dict[str, int],
        *,
        websocket: bool | None = None,
        limit: int = 1000,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        poll_every: float | None = None,
    ) -> None:
        self.exchange = exchange
        self.markets = list(markets)
        self.interval = interval
        self.step_ms = interval_ns(interval) // NS_PER_MS
        starts = start if isinstance(start, dict) else dict.fromkeys(self.markets, start)
        # the open time of the last bar emitted: the bar closing at start opens a step before
        self.last_open = {
            m: -(-int(starts[m]) // NS_PER_MS) - 2 * self.step_ms for m in self.markets
        }
        has = getattr(exchange, "has", {}) or {}
        self.websocket = bool(has.get("watchOHLCV")) if websocket is None else websocket
        self.limit, self.backoff, self.max_backoff = int(limit), backoff, max_backoff
        self.poll_every = poll_every if poll_every is not None else min(self.step_ms / 4000, 5.0)
        self.stopped = asyncio.Event()
        self.reconnects = 0
        self.backfilled = 0

    async def _session(self, market: str, emit: Emit) -> None:
        await self._backfill(market, emit)
        if self.websocket:
            await self._watch(market, emit)  # returns at a gap: backfill it
        else:
            await self._sleep(self.poll_every)

    def _emit(self, market: str, rows: list[list[Any]], emit: Emit) -> None:
        """Rows after the last emitted one, contiguous from it (the caller checked)."""
        fresh = [r for r in rows if int(r[0]) > self.last_open[market]]
        if not fresh:
            return
        bars = ohlcv_to_bars(fresh, self.interval)
        self.last_open[market] = int(fresh[-1][0])
        emit(qmtl_symbol(market), bars)

    async def _backfill(self, market: str, emit: Emit) -> None:
        """Page REST from the last emitted bar up to the exchange's time."""
        now = int(await self.exchange.fetch_time())
        while not self.stopped.is_set():
            since = self.last_open[market] + self.step_ms
            rows = await self.exchange.fetch_ohlcv(market, self.interval, since, self.limit)
            closed = sorted(
                (r for r in rows or [] if int(r[0]) + self.step_ms <= now and int(r[0]) >= since),
                key=lambda r: int(r[0]),
            )
            if not closed:
                return
            self.backfilled += len(closed)
            self._emit(market, closed, emit)
            if len(rows) < self.limit:
                return

    async def _watch(self, market: str, emit: Emit) -> None:
        """Closed candles from the stream until one follows a missing one."""
        rows: list[list[Any]] = []
        fresh: set[int] = set()  # candles updated on this connection (older ones may be stale)
        while not self.stopped.is_set():
            # what the stream already delivered first (it may have come while REST ran)
            if not self._closed_from(market, rows, fresh, emit):
                return  # bars closed while the stream was away: REST first
            watch = asyncio.ensure_future(self.exchange.watch_ohlcv(market, self.interval))
            stop = asyncio.ensure_future(self.stopped.wait())
            done, _ = await asyncio.wait({watch, stop}, return_when=asyncio.FIRST_COMPLETED)
            if watch not in done:
                watch.cancel()
                return
            stop.cancel()
            rows = watch.result()
            fresh.update(int(r[0]) for r in rows)

    def _closed_from(self, market: str, rows: list[list[Any]], fresh: set[int], emit: Emit) -> bool:
        """Emit the candles a later one has closed (ccxt's cache holds the latest value of
        each); False when one is missing before them, or was last updated on an earlier
        connection (its final value may not have reached the cache): REST has them."""
        cache = (getattr(self.exchange, "ohlcvs", {}) or {}).get(market, {})
        candles = list(cache.get(self.interval) or rows)
        if not candles:
            return True
        opens = sorted({int(r[0]) for r in candles})
        newest = opens[-1]
        closed = [o for o in opens if self.last_open[market] < o < newest]
        if not closed:
            return True
        want = np.arange(self.last_open[market] + self.step_ms, newest, self.step_ms)
        if not np.array_equal(np.array(closed), want) or not fresh.issuperset(closed):
            return False
        by_open = {int(r[0]): r for r in candles}
        self._emit(market, [by_open[o] for o in closed], emit)
        return True


class ExchangeBarFeed:
    """An :class:`ExchangeFeed` in a thread, read as a live run's feed (one partition; the
    position is the bars delivered; a restarted run resumes from its history end).

    >>> f = ExchangeBarFeed(lambda: None, start_thread=False)
    >>> f.poll(10, 0.01), f.positions()
    ([], {0: 0})
    """

    topic = "exchange"

    def __init__(
        self,
        make: Callable[[], ExchangeFeed | None],
        start_thread: bool = True,
    ) -> None:
        self._queue: queue.Queue[tuple[str, Batch]] = queue.Queue()
        self._make = make
        self._n = 0
        self._error: str | None = None
        self.exhausted = False
        self._loop = asyncio.new_event_loop()
        self._feed: ExchangeFeed | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="exchange-feed")
        if start_thread:
            self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._feed = self._make()
            if self._feed is not None:
                self._loop.run_until_complete(self._feed.run(lambda s, b: self._queue.put((s, b))))
        except Exception as exc:  # shown by status(); the run names it
            self._error = f"{type(exc).__name__}: {exc}"
            log.error("exchange feed stopped: %s", self._error)

    def poll(self, max_messages: int, timeout: float) -> list[RawMessage]:
        """Bars delivered since the last poll (waits up to ``timeout`` for the first)."""
        out: list[RawMessage] = []
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return out
        while True:
            symbol, bars = item
            for i in range(len(bars["ts"])):
                one = {k: v[i : i + 1] for k, v in bars.items()}
                out.append(RawMessage(0, self._n, symbol.encode(), None, [(symbol, one)]))
                self._n += 1
            if len(out) >= max_messages:
                return out
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return out

    def positions(self) -> dict[int, int]:
        """Bars delivered so far."""
        return {0: self._n}

    def commit(self, positions: dict[int, int]) -> None:
        """Nothing to commit: the exchange keeps no offsets."""

    def status(self) -> str | None:
        """The error that stopped the feed, if any."""
        return self._error

    def close(self) -> None:
        """Stop the feed's thread."""
        feed = self._feed
        if feed is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(feed.stop)
        self._thread.join(10)
