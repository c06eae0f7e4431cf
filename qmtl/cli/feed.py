"""``qmtl feed replay``: publish catalog bars to a Kafka topic (for demos and tests).

>>> from typer.testing import CliRunner
>>> CliRunner().invoke(feed_app, ["--help"]).exit_code
0
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from connectors.data.catalog import Catalog, default_data_dir
from connectors.live.feeds import CatalogFeed, FeedError, Speed
from connectors.live.kafka_io import publish_bars
from qmtl.cli.common import console, err_console, fail
from qmtl.core.times import parse_time

feed_app = typer.Typer(help="Publish bars to a Kafka topic.", no_args_is_help=True)


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
