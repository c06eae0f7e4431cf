"""``qmtl data``: the local bar catalog (import CSV, generate demo data, list coverage).

>>> from typer.testing import CliRunner
>>> CliRunner().invoke(data_app, ["--help"]).exit_code
0
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

data_app = typer.Typer(help="The local bar catalog.", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)

DataOption = Annotated[
    Path | None, typer.Option("--data", help="Catalog folder (default $QMTL_DATA or ~/.qmtl/data).")
]


def _catalog(data: Path | None):
    from connectors.catalog import Catalog, default_data_dir

    return Catalog(data or default_data_dir())


def _fail(message: str) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


@data_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV file with date/open/high/low/close[/volume].")],
    symbol: Annotated[str, typer.Option(help="Symbol to store the bars under.")],
    interval: Annotated[str, typer.Option(help="Bar interval: 1m 5m 15m 1h 4h 1d.")] = "1d",
    data: DataOption = None,
    on_bad_bars: Annotated[str, typer.Option(help="raise (default) or drop.")] = "raise",
) -> None:
    """Import a CSV file of bars into the catalog."""
    from connectors.csv_import import import_csv
    from qmtl.intervals import INTERVALS

    if interval not in INTERVALS:
        raise _fail(f"unknown interval {interval!r}: use one of {', '.join(INTERVALS)}")
    if on_bad_bars not in ("raise", "drop"):
        raise _fail(f"--on-bad-bars must be 'raise' or 'drop', got {on_bad_bars!r}")
    catalog = _catalog(data)
    try:
        rows, dropped = import_csv(catalog, file, symbol, interval, on_bad=on_bad_bars)  # type: ignore[arg-type]
    except (ValueError, LookupError, OSError) as exc:
        raise _fail(str(exc)) from None
    note = f" ({dropped} bad bars dropped)" if dropped else ""
    console.print(f"imported {rows} {interval} bars of {symbol} into {catalog.root}{note}")


@data_app.command()
def demo(
    data: DataOption = None,
    symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols.")] = None,
    interval: Annotated[str, typer.Option(help="Bar interval.")] = "1d",
    bars: Annotated[int, typer.Option(help="Bars per symbol.")] = 2520,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Write deterministic synthetic bars (no download) for the demo and experiments."""
    from connectors.synthetic import DEMO_SYMBOLS, write_demo
    from qmtl.intervals import INTERVALS

    if interval not in INTERVALS:
        raise _fail(f"unknown interval {interval!r}: use one of {', '.join(INTERVALS)}")
    if bars < 1:
        raise _fail(f"--bars must be >= 1, got {bars}")
    names = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else DEMO_SYMBOLS
    catalog = _catalog(data)
    try:
        write_demo(catalog, names, interval=interval, n=bars, seed=seed)
    except (ValueError, LookupError, OSError) as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"wrote {bars} synthetic {interval} bars for {', '.join(names)} into {catalog.root}"
    )


@data_app.command("ls")
def ls(data: DataOption = None) -> None:
    """List what the catalog holds: symbol, interval, first and last bar, rows."""
    from qmtl.bars import format_ts

    catalog = _catalog(data)
    try:
        entries = catalog.entries()
    except LookupError as exc:
        raise _fail(str(exc)) from None
    if not entries:
        console.print(f"catalog {catalog.root} is empty: try `qmtl data demo`")
        return
    table = Table(title=f"catalog {catalog.root}")
    for col in ("symbol", "interval", "first", "last", "rows"):
        table.add_column(col, justify="right" if col == "rows" else "left")
    for symbol, interval, first, last, rows in entries:
        table.add_row(symbol, interval, format_ts(first), format_ts(last), f"{rows:,}")
    console.print(table)
