"""``qmtl feed replay``: publish catalog bars to a Kafka topic (for demos and tests);
``qmtl feed ccxt:EXCHANGE``: an exchange's closed bars to the catalog and a Kafka topic.

>>> from typer.testing import CliRunner
>>> CliRunner().invoke(feed_app, ["--help"]).exit_code
0
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Annotated, Any

import click
import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from typer.core import TyperGroup

from connectors.data.catalog import Catalog, default_data_dir
from connectors.live.feeds import CatalogFeed, FeedError, Speed
from connectors.live.kafka_io import publish_bars
from qmtl.cli.common import console, err_console, fail
from qmtl.core.times import parse_time


class _FeedGroup(TyperGroup):
    """``qmtl feed ccxt:binance ...`` is ``qmtl feed ccxt binance ...``."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        if args and args[0].startswith("ccxt:"):
            args = ["ccxt", args[0].removeprefix("ccxt:"), *args[1:]]
        return super().resolve_command(ctx, args)


feed_app = typer.Typer(help="Publish bars to a Kafka topic.", no_args_is_help=True,
                       cls=_FeedGroup)
URLS_ENV = "QMTL_CCXT_URLS"
"""JSON merged into the ccxt exchange's ``urls['api']`` (a proxy, or a local test server)."""


@feed_app.command("replay")
def replay(
    topic: Annotated[str, typer.Option(help="Topic to publish to.")] = "bars",
    brokers: Annotated[str, typer.Option(envvar="QMTL_BROKERS", help="Kafka host:port.")] = (
        "127.0.0.1:9092"
    ),
    symbols: Annotated[
        str | None, typer.Option(help="Comma-separated symbols (default: all at the interval).")
    ] = None,
    interval: Annotated[str, typer.Option(help="Bar interval.")] = "1d",
    start: Annotated[str | None, typer.Option(help="First bar time (ISO).")] = None,
    end: Annotated[str | None, typer.Option(help="Last bar time (ISO).")] = None,
    speed: Annotated[
        str, typer.Option(help="max, Nx (times real time) or N/s (bar times a second).")
    ] = "10/s",
    data: Annotated[Path | None, typer.Option(help="Catalog folder ($QMTL_DATA).")] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
) -> None:
    """Publish catalog bars to a Kafka topic in time order, one JSON message per bar."""
    try:
        Speed.parse(speed)
        catalog = Catalog(data or default_data_dir())
        names = (
            [s.strip() for s in symbols.split(",") if s.strip()]
            if symbols
            else (catalog.symbols(interval))
        )
        if not names:
            raise ValueError(f"no {interval} bars in catalog {catalog.root}: try `qmtl data demo`")
        lo = parse_time(start) if start else None
        hi = parse_time(end) if end else None
        total = 0
        for s in names:
            cov = catalog.coverage(s, interval)
            if cov is None:
                raise ValueError(f"no {interval} bars for {s!r} in catalog {catalog.root}")
            total += len(catalog.read(s, interval, lo, hi)["ts"])
        feed = CatalogFeed.from_catalog(catalog, names, interval, lo, hi, speed)
        with Progress(
            TextColumn("[bold]publish[/]"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err_console,
            transient=True,
            disable=not err_console.is_terminal,
        ) as progress:
            task = progress.add_task("publish", total=total)
            n = publish_bars(brokers, topic, feed, lambda k: progress.advance(task, k))
    except (ValueError, LookupError, FeedError, RuntimeError) as exc:
        if debug:
            raise
        raise fail(str(exc)) from None
    console.print(
        f"published {n} bars of {', '.join(names)} to {topic} on {brokers}", highlight=False
    )


def _starts(catalog: Catalog, symbols: list[str], interval: str, since: int) -> dict[str, int]:
    """Where each symbol's feed starts: after its last catalog bar, else at ``since``."""
    from qmtl.core.intervals import interval_ns

    out = {}
    for s in symbols:
        cov = catalog.coverage(s, interval)
        out[s] = since if cov is None else catalog.read(s, interval)["ts"][-1] + interval_ns(
            interval)
    return out


@feed_app.command("ccxt")
def ccxt_feed(
    exchange: Annotated[str, typer.Argument(help="The ccxt exchange id (qmtl feed ccxt:ID).")],
    symbols: Annotated[str, typer.Option(help="Comma-separated markets, e.g. BTC/USDT,ETH/USDT "
                                         "(BTC-USDT in the catalog and as the Kafka key).")],
    interval: Annotated[str, typer.Option(help="Bar interval.")] = "1m",
    brokers: Annotated[str | None, typer.Option(
        envvar="QMTL_BROKERS", help="Kafka host:port (default: the catalog only).")] = None,
    topic: Annotated[str, typer.Option(help="Topic to publish to.")] = "bars",
    since: Annotated[str | None, typer.Option(
        help="First bar time (ISO) of a symbol the catalog lacks (default: now).")] = None,
    websocket: Annotated[bool, typer.Option(
        help="Use the exchange's websocket (ccxt.pro watch_ohlcv) where it has one; "
        "--no-websocket polls REST.")] = True,
    max_bars: Annotated[int | None, typer.Option(help="Stop after N bars.")] = None,
    trades: Annotated[bool, typer.Option(
        help="Publish the exchange's trades (ccxt.pro watch_trades, the missed ones from "
        "REST fetch_trades, each once) for a live run with --feed trades; their bars of "
        "--interval land in the catalog.")] = False,
    max_trades: Annotated[int | None, typer.Option(help="--trades: stop after N trades.")] = None,
    data: Annotated[Path | None, typer.Option(help="Catalog folder ($QMTL_DATA).")] = None,
    debug: Annotated[bool, typer.Option(help="Show tracebacks.")] = False,
) -> None:
    """Closed bars of an exchange's markets, from where the catalog ends: REST backfill,
    then the websocket (REST polling without one), the missed bars backfilled after every
    reconnect; each bar lands in the catalog and, with --brokers, on the topic. With
    --trades the topic gets the trades (one JSON message each, keyed by symbol) and the
    catalog their closed bars."""
    if trades:
        return _trade_feed(exchange, symbols, interval, brokers, topic, since, websocket,
                           max_trades, data, debug)
    from connectors.live.bar_codec import encode_bar
    from connectors.live.exchange_feed import (
        ExchangeBarFeed,
        ExchangeFeed,
        make_exchange,
        market_name,
        qmtl_symbol,
    )
    from qmtl.core.bars import concat_batches

    try:
        markets = [market_name(s.strip()) for s in symbols.split(",") if s.strip()]
        if not markets:
            raise ValueError("--symbols: name at least one market, e.g. BTC/USDT")
        if max_bars is not None and max_bars < 1:
            raise ValueError(f"--max-bars must be >= 1, got {max_bars}")
        urls = json.loads(os.environ[URLS_ENV]) if os.environ.get(URLS_ENV) else None
        catalog = Catalog(data or default_data_dir())
        names = [qmtl_symbol(m) for m in markets]
        first = parse_time(since) if since else time.time_ns()
        starts = _starts(catalog, names, interval, first)
        make_exchange(exchange)  # a clear error for an unknown exchange, before the thread
        producer = _producer(brokers, topic)

        def make() -> ExchangeFeed:
            ex = make_exchange(exchange, urls)
            return ExchangeFeed(ex, markets, interval,
                                {m: starts[qmtl_symbol(m)] for m in markets},
                                websocket=None if websocket else False)

        feed = ExchangeBarFeed(make)
        n = 0
        try:
            while max_bars is None or n < max_bars:
                room = 1000 if max_bars is None else max_bars - n
                got: dict[str, list[Any]] = {}
                for msg in feed.poll(room, 0.5)[:room]:
                    ((symbol, bar),) = msg.bars or []
                    got.setdefault(symbol, []).append(bar)
                    if producer is not None:
                        row = {k: v[0] for k, v in bar.items()}
                        producer.produce(topic, key=symbol.encode(), value=encode_bar(row))
                        producer.poll(0)
                    n += 1
                for symbol, parts in got.items():  # one catalog write per symbol and poll
                    catalog.write(symbol, interval, concat_batches(parts))
                if feed.status():
                    raise RuntimeError(f"ccxt:{exchange}: {feed.status()}")
        except KeyboardInterrupt:
            pass
        finally:
            feed.close()
            if producer is not None:
                producer.flush(30.0)
    except (ValueError, LookupError, FeedError, RuntimeError, ImportError) as exc:
        if debug:
            raise
        raise fail(str(exc)) from None
    where = f" and {topic} on {brokers}" if brokers else ""
    console.print(f"{n} bars of {', '.join(names)} to catalog {catalog.root}{where}",
                  highlight=False)


def _trade_feed(exchange: str, symbols: str, interval: str, brokers: str | None, topic: str,
                since: str | None, websocket: bool, max_trades: int | None,
                data: Path | None, debug: bool) -> None:
    """``qmtl feed ccxt:EX --trades`` (see :func:`ccxt_feed`): the trades after the
    catalog's last bar of each symbol (else after --since, else from now)."""
    from connectors.live.exchange_feed import make_exchange, market_name, qmtl_symbol
    from connectors.live.exchange_trades import ExchangeTradeFeed, ExchangeTradeThread
    from connectors.live.trade_codec import encode_trade
    from dataflows.trade_bars import TradeBars
    from qmtl.core.intervals import interval_ns

    try:
        markets = [market_name(s.strip()) for s in symbols.split(",") if s.strip()]
        if not markets:
            raise ValueError("--symbols: name at least one market, e.g. BTC/USDT")
        if max_trades is not None and max_trades < 1:
            raise ValueError(f"--max-trades must be >= 1, got {max_trades}")
        urls = json.loads(os.environ[URLS_ENV]) if os.environ.get(URLS_ENV) else None
        catalog = Catalog(data or default_data_dir())
        names = [qmtl_symbol(m) for m in markets]
        first = parse_time(since) if since else time.time_ns()
        step = interval_ns(interval)
        # trades after the last bar made (its close), else from the first one's open
        after = {m: v - step for m, v in zip(
            markets, _starts(catalog, names, interval, first).values(), strict=True)}
        make_exchange(exchange)  # a clear error for an unknown exchange, before the thread
        producer = _producer(brokers, topic)
        ops = {s: TradeBars(interval, 0) for s in names}

        def make() -> ExchangeTradeFeed:
            return ExchangeTradeFeed(make_exchange(exchange, urls), markets, after,
                                     websocket=None if websocket else False)

        feed = ExchangeTradeThread(make)
        n = bars = 0
        try:
            while max_trades is None or n < max_trades:
                for msg in feed.poll(1000, 0.5):
                    ((symbol, batch),) = msg.trades or []
                    if max_trades is not None:
                        batch = {k: v[: max_trades - n] for k, v in batch.items()}
                    if producer is not None:
                        for i in range(len(batch["ts"])):
                            row = {k: v[i] for k, v in batch.items()}
                            row["side"] = row["side"] or None
                            producer.produce(topic, key=symbol.encode(),
                                             value=encode_trade(row, symbol))
                            producer.poll(0)
                    n += len(batch["ts"])
                    closed = ops[symbol].add(batch)
                    if len(closed["ts"]):
                        catalog.write(symbol, interval, closed)
                        bars += len(closed["ts"])
                    if max_trades is not None and n >= max_trades:
                        break
                if feed.status():
                    raise RuntimeError(f"ccxt:{exchange}: {feed.status()}")
        except KeyboardInterrupt:
            pass
        finally:
            feed.close()
            if producer is not None:
                producer.flush(30.0)
    except (ValueError, LookupError, FeedError, RuntimeError, ImportError) as exc:
        if debug:
            raise
        raise fail(str(exc)) from None
    where = f" to {topic} on {brokers}" if brokers else ""
    console.print(f"{n} trades of {', '.join(names)}{where}; {bars} closed {interval} bars to "
                  f"catalog {catalog.root}", highlight=False)


def _producer(brokers: str | None, topic: str) -> Any:
    """A Kafka producer that waits for every replica (``acks=all``) after making ``topic``
    on ``brokers``; None without brokers (the catalog only).

    >>> _producer(None, "bars") is None
    True
    """
    if not brokers:
        return None
    from confluent_kafka import Producer

    from connectors.live.feeds import ensure_topic, kafka_config

    ensure_topic(brokers, topic)
    return Producer({**kafka_config(brokers, 10.0), "acks": "all"})
