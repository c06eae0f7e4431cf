"""Trades from a crypto exchange through ccxt: ``ccxt.pro``'s ``watch_trades`` where the
exchange has it, REST ``fetch_trades`` polling otherwise, with the trades missed while the
stream was away fetched from REST, each trade delivered once (by its id).

Per market the feed keeps the time of the latest trade it emitted (``last_ms``) and the ids
it emitted lately. It first pages ``fetch_trades`` from there up to the exchange's time
(``fetch_time``), then watches the stream. The first trades a connection delivers (also
one another market's stream reopened: ccxt shares a connection between streams) send it
back to REST for everything from ``last_ms`` up to the first of them: whatever happened
between the REST pages and the subscription (or while the old connection was down) is
fetched, and a trade both sources gave is emitted once. So is a delivery as long as ccxt's
trade cache (``tradesLimit``): older trades may have fallen out of it. Before each wait on
the stream the feed also reads ccxt's cache: a trade that arrived while no ``watch_trades``
was waiting would otherwise come out only with the next trade. A network error (a
dropped connection, a refused reconnect, a rate limit: ``ccxt.NetworkError`` and its
subclasses) waits ``backoff`` seconds, doubling up to ``max_backoff``, then catches up from
REST and reconnects.

REST pages ask ``fetch_trades(market, since, limit, {"until": ...})`` over at most
``window_ms`` (an hour less a millisecond: Binance refuses a wider span) and step on from the
last trade of a full page (its time again: the ids tell the trades already had) or from the
window's end. More than ``limit`` trades in one millisecond cannot be paged by time: the
rest of that millisecond is skipped with a warning and counted (:attr:`skipped_ms`).

The ids of the two sources must be the same trades' ids: on Binance ``fetch_trades`` reads
aggregate trades (``/api/v3/aggTrades``), so the stream watched is ``<symbol>@aggTrade``
(``TRADE_STREAM``), not the raw ``@trade`` stream whose ids differ.

A trade is ``ts`` (ns), ``price``, ``size``, ``side`` and ``id`` (text), as
:mod:`connectors.live.trade_codec` carries it; ``emit(qmtl_symbol, trades)`` gets every trade
after ``after`` (ns) once, in time order. :class:`ExchangeTradeThread` runs it in a thread as
a live run's feed (``qmtl run --mode live --source ccxt:binance --feed trades``); ``qmtl feed
ccxt:... --trades`` publishes the trades to Kafka.

>>> b = trade_batch([{"timestamp": 1000, "price": 2.5, "amount": 0.1, "side": "buy", "id": 7}])
>>> b["ts"].tolist(), b["id"].tolist(), b["side"].tolist()
([1000000000], ['7'], ['buy'])
"""

from __future__ import annotations

import asyncio
import logging
import queue
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from connectors.live.exchange_feed import ExchangeBarFeed, ReconnectingFeed, qmtl_symbol
from connectors.live.feeds import RawMessage
from qmtl.core.bars import Batch

log = logging.getLogger("qmtl.feed")
NS_PER_MS = 1_000_000
TRADE_STREAM: dict[str, dict[str, Any]] = {"binance": {"name": "aggTrade"}}
"""``watch_trades`` params per exchange id, so the stream's ids are ``fetch_trades``' ids."""
Emit = Callable[[str, Batch], None]


def trade_batch(trades: Sequence[dict[str, Any]]) -> Batch:
    """ccxt trade structures as a trade batch (``ts`` ns, ``price``, ``size``, ``side``,
    ``id``; an id or side ccxt has not is ``""``).

    >>> trade_batch([])["ts"].dtype
    dtype('int64')
    """
    return {
        "ts": np.array([int(t["timestamp"]) * NS_PER_MS for t in trades], dtype=np.int64),
        "price": np.array([float(t["price"]) for t in trades], dtype=np.float64),
        "size": np.array([float(t["amount"]) for t in trades], dtype=np.float64),
        "side": np.array([t.get("side") or "" for t in trades], dtype=object),
        "id": np.array(["" if t.get("id") is None else str(t["id"]) for t in trades],
                       dtype=object),
    }


def _key(t: dict[str, Any]) -> str:
    """A trade's identity: its id, else its time, price and amount."""
    if t.get("id") is not None:
        return str(t["id"])
    return f"{t['timestamp']}:{t['price']}:{t['amount']}"


class ExchangeTradeFeed(ReconnectingFeed):
    """Trades of ``markets`` (exchange names, ``BTC/USDT``) from ``exchange`` (an async ccxt
    exchange) after ``after`` (ns, per market or one for all); see the module docstring.
    ``websocket``: None uses it when the exchange has ``watchTrades``.

    >>> ExchangeTradeFeed(None, ["BTC/USDT"], after=5 * 10**9).last_ms["BTC/USDT"]
    5000
    """

    _what, _missed = " trades", "trades"

    def __init__(
        self,
        exchange: Any,
        markets: Sequence[str],
        after: int | dict[str, int],
        *,
        websocket: bool | None = None,
        limit: int = 1000,
        window_ms: int = 3_600_000 - 1,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        poll_every: float = 1.0,
        remember: int = 100_000,
    ) -> None:
        self.exchange = exchange
        self.markets = list(markets)
        afters = after if isinstance(after, dict) else dict.fromkeys(self.markets, after)
        self.after = {m: int(afters[m]) for m in self.markets}
        self.last_ms = {m: self.after[m] // NS_PER_MS for m in self.markets}
        self._seen: dict[str, set[str]] = {m: set() for m in self.markets}
        self._order: dict[str, deque[str]] = {m: deque() for m in self.markets}
        has = getattr(exchange, "has", {}) or {}
        self.websocket = bool(has.get("watchTrades")) if websocket is None else websocket
        self.limit, self.window_ms = int(limit), int(window_ms)
        self.backoff, self.max_backoff, self.poll_every = backoff, max_backoff, poll_every
        self.remember = int(remember)
        self.params = TRADE_STREAM.get(getattr(exchange, "id", ""), {})
        self.stopped = asyncio.Event()
        self.reconnects = 0
        self.backfilled = 0  # trades emitted from REST
        self.streamed = 0  # trades emitted from the stream
        self.duplicates = 0  # trades both sources gave (emitted once)
        self.skipped_ms = 0

    async def _session(self, market: str, emit: Emit) -> None:
        await self._backfill(market, int(await self.exchange.fetch_time()), emit)
        if self.websocket:
            await self._watch(market, emit)
        else:
            await self._sleep(self.poll_every)

    def _emit(self, market: str, trades: list[dict[str, Any]], emit: Emit,
              again: bool = True) -> int:
        """Emit the trades not emitted before and after the feed's start, in time order;
        returns how many (``again``: count a repeated one in :attr:`duplicates`)."""
        seen, order, after = self._seen[market], self._order[market], self.after[market]
        fresh = []
        for t in sorted(trades, key=lambda t: (int(t["timestamp"]), _key(t))):
            k = _key(t)
            if k in seen:
                self.duplicates += again
                continue
            if int(t["timestamp"]) * NS_PER_MS <= after or int(t["timestamp"]) < self.last_ms[
                    market]:
                continue
            seen.add(k)
            order.append(k)
            fresh.append(t)
        while len(order) > self.remember:
            seen.discard(order.popleft())
        if fresh:
            self.last_ms[market] = int(fresh[-1]["timestamp"])
            emit(qmtl_symbol(market), trade_batch(fresh))
        return len(fresh)

    async def _backfill(self, market: str, until: int, emit: Emit) -> None:
        """Page REST from the latest emitted trade's time up to ``until`` (ms, inclusive)."""
        lo = self.last_ms[market]
        while lo <= until and not self.stopped.is_set():
            hi = min(lo + self.window_ms, until)
            rows = await self.exchange.fetch_trades(market, lo, self.limit, {"until": hi})
            rows = rows or []
            inside = [r for r in rows if lo <= int(r["timestamp"]) <= hi]
            self.backfilled += self._emit(market, inside, emit)
            newest = max((int(r["timestamp"]) for r in rows), default=hi)
            if len(rows) >= self.limit and newest <= hi:  # a full page: more in the window
                if newest > lo:
                    lo = newest  # again from the last one's time (its ids are known)
                    continue
                self.skipped_ms += 1
                log.warning("%s %s: more than %d trades at %d ms: the rest of it skipped",
                            self.exchange.id, market, self.limit, lo)
                lo += 1
            else:
                lo = hi + 1

    async def _watch(self, market: str, emit: Emit) -> None:
        """Trades from the stream (until a network error); a connection's first delivery
        and a delivery that filled ccxt's cache are first completed from REST."""
        first = True
        seen_clients: list[Any] = []
        cache = int((getattr(self.exchange, "options", {}) or {}).get("tradesLimit", 1000))
        while not self.stopped.is_set():
            if not first:  # what reached ccxt's cache while REST ran or trades were emitted
                self.streamed += self._emit(market, self._cached(market), emit, again=False)
            watch = asyncio.ensure_future(
                self.exchange.watch_trades(market, None, None, dict(self.params)))
            stop = asyncio.ensure_future(self.stopped.wait())
            done, _ = await asyncio.wait({watch, stop}, return_when=asyncio.FIRST_COMPLETED)
            if watch not in done:
                watch.cancel()
                return
            stop.cancel()
            trades = list(watch.result() or [])
            if not trades:
                continue
            clients = self._clients()
            # a new connection (this market's own or one shared with another market and
            # reopened by it): what happened while none was open comes from REST
            moved = any(all(c is not o for o in seen_clients) for c in clients)
            seen_clients = clients
            # (a delivery may repeat trades already had: REST up to the first new one)
            new = [int(t["timestamp"]) for t in trades if _key(t) not in self._seen[market]]
            if new and (first or moved or len(trades) >= cache):
                await self._backfill(market, min(new), emit)
                first = False
            self.streamed += self._emit(market, trades, emit)

    def _clients(self) -> list[Any]:
        """ccxt's open websocket clients (a new object for every new connection)."""
        return list((getattr(self.exchange, "clients", {}) or {}).values())

    def _cached(self, market: str) -> list[dict[str, Any]]:
        """The trades in ccxt's cache of ``market``: one that came while no ``watch_trades``
        was waiting is only returned by the next one, after the next trade."""
        return list((getattr(self.exchange, "trades", {}) or {}).get(market) or [])


class ExchangeTradeThread(ExchangeBarFeed):
    """An :class:`ExchangeTradeFeed` in a thread, read as a live run's feed: one message
    per delivery, carrying its trades (:attr:`RawMessage.trades`) for the live source's
    assembler to make bars of (``--feed trades``).

    >>> f = ExchangeTradeThread(lambda: None, start_thread=False)
    >>> f._queue.put(("BTC-USDT", trade_batch([{"timestamp": 1, "price": 1.0, "amount": 1.0}])))
    >>> [(m.offset, m.trades[0][0]) for m in f.poll(10, 0.01)], f.positions()
    ([(0, 'BTC-USDT')], {0: 1})
    """

    topic = "exchange-trades"

    def poll(self, max_messages: int, timeout: float) -> list[RawMessage]:
        """Deliveries since the last poll (waits up to ``timeout`` for the first)."""
        out: list[RawMessage] = []
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return out
        while True:
            symbol, trades = item
            out.append(RawMessage(0, self._n, symbol.encode(), None, trades=[(symbol, trades)]))
            self._n += 1
            if len(out) >= max_messages:
                return out
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return out
