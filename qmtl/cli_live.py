"""The live side of the CLI: ``qmtl run --mode live`` (see :mod:`qmtl.live`) and
``qmtl feed replay`` (publish catalog bars to a Kafka topic, for demos and tests).

>>> from typer.testing import CliRunner
>>> CliRunner().invoke(feed_app, ["--help"]).exit_code
0
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

feed_app = typer.Typer(help="Publish bars to a Kafka topic.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


def setup_logging(debug: bool = False) -> None:
    """Log lines of the live run to stderr (the gate's reasons, dead letters, outages).

    >>> setup_logging(); logging.getLogger("qmtl").level == logging.INFO
    True
    """
    logger = logging.getLogger("qmtl")
    if not any(getattr(h, "_qmtl", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        handler._qmtl = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    for noisy in ("httpx", "httpcore", "uvicorn.error", "uvicorn.access", "qmtl.kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING if not debug else logging.INFO)


class OrderPrinter:
    """One console line per order and per fill, up to ``per_second`` lines a second; past
    that, one line a second says how many more there were (they are all in the order store).

    >>> p = OrderPrinter(per_second=1, write=lambda line: None)
    >>> p.budget
    1
    """

    def __init__(self, per_second: int = 20, write: Any = None) -> None:
        import time

        self.per_second = per_second
        self.budget = per_second
        self.skipped = [0, 0]
        self._clock = time.monotonic
        self._window = self._clock()
        self._write = write or (lambda line: console.print(line, highlight=False))

    def _tick(self) -> None:
        now = self._clock()
        if now - self._window >= 1.0:
            if any(self.skipped):
                self._write(f"[dim]... {self.skipped[0]:,} more orders and {self.skipped[1]:,} "
                            "more fills in the last second (all in the order store)[/]")
            self._window, self.budget, self.skipped = now, self.per_second, [0, 0]

    def __call__(self, strategy: str, intents: list[Any], fills: list[Any]) -> None:
        from qmtl.bars import format_ts

        self._tick()
        for o in intents:
            if self.budget <= 0:
                self.skipped[0] += 1
                continue
            self.budget -= 1
            self._write(f"[cyan]order[/] {strategy} {o.symbol} @ {format_ts(o.ts)}: target "
                        f"{o.target_qty:,.2f} ({o.target_weight:+.1%}) · {o.reason}")
        for f in fills:
            if self.budget <= 0:
                self.skipped[1] += 1
                continue
            self.budget -= 1
            self._write(f"[green]fill[/]  {strategy} {f.symbol} @ {format_ts(f.ts)}: "
                        f"{f.qty:+,.2f} at {f.price:,.4f} (fee {f.fee:,.2f})")


def run_live_command(cls: type, params: dict[str, str], options: Any, debug: bool) -> None:
    """``qmtl run --mode live``: start, print orders as they come, then a summary."""
    from qmtl.cli import metrics_table
    from qmtl.live import run_live

    setup_logging(debug)

    def started(info: dict[str, Any]) -> None:
        what = "resuming" if info["resuming"] else "starting"
        err_console.print(
            f"[bold]{what}[/] {info['mode']} run {info['run_id']} of {cls.__name__} · world "
            f"{info['world']} at {info['url']} · bars from {info['source']} · warm-up "
            f"{info['warmup_bars']} bars",
            highlight=False,
        )

    result = run_live(cls, options, params=params, on_order=OrderPrinter(), on_started=started)
    console.print(
        metrics_table(f"{result.strategy} · {result.mode} · world {result.world}", result.metrics)
    )
    st = result.stats
    rate = f" at {st.rate:,.0f} bars/s" if st.rate else ""
    console.print(
        f"{st.live_bars} live bars{rate} ({st.warmup_bars} warm-up, {st.overlap} already in "
        f"history, {st.gap_filled} gap-filled, {st.dead_letters} dead letters) · "
        f"{len(result.orders)} orders · {len(result.fills)} fills · positions "
        f"{result.positions or 'none'}",
        highlight=False,
    )
    if result.out is not None:
        console.print(
            f"wrote {result.out}/bars.parquet and {result.out}/metrics.json", highlight=False
        )


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
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from connectors.catalog import Catalog, default_data_dir
    from connectors.feeds import CatalogFeed, FeedError, Speed
    from connectors.kafka_io import publish_bars
    from qmtl.bars import parse_time
    from qmtl.cli import fail

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
