"""``qmtl data``: the bar catalog and the layers around it (import, demo data, list coverage,
backfill ahead, quality checks).

>>> from typer.testing import CliRunner
>>> CliRunner().invoke(data_app, ["--help"]).exit_code
0
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from qmtl.cli.common import (
    console,
    err_console,
    fail,
    make_provider,
    progress_bar,
)

data_app = typer.Typer(help="The local bar catalog.", no_args_is_help=True)

DataOption = Annotated[
    Path | None, typer.Option("--data", help="Catalog folder (default $QMTL_DATA or ~/.qmtl/data).")
]
OriginOption = Annotated[
    str | None,
    typer.Option(help="Backfill origin: folder:PATH or ccxt:EXCHANGE (default $QMTL_ORIGIN)."),
]
QuestDBOption = Annotated[
    str | None,
    typer.Option("--questdb", help="QuestDB PG-wire URL to read from (default $QMTL_QUESTDB)."),
]


def _catalog(data: Path | None):
    from connectors.data.catalog import Catalog, default_data_dir

    return Catalog(data or default_data_dir())


@data_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="CSV file with date/open/high/low/close[/volume].")],
    symbol: Annotated[str, typer.Option(help="Symbol to store the bars under.")],
    interval: Annotated[str, typer.Option(help="Bar interval: 1m 5m 15m 1h 4h 1d.")] = "1d",
    data: DataOption = None,
    on_bad_bars: Annotated[str, typer.Option(help="raise (default) or drop.")] = "raise",
) -> None:
    """Import a CSV file of bars into the catalog."""
    from connectors.data.csv_import import import_csv
    from qmtl.core.intervals import INTERVALS

    if interval not in INTERVALS:
        raise fail(f"unknown interval {interval!r}: use one of {', '.join(INTERVALS)}")
    if on_bad_bars not in ("raise", "drop"):
        raise fail(f"--on-bad-bars must be 'raise' or 'drop', got {on_bad_bars!r}")
    catalog = _catalog(data)
    try:
        rows, dropped = import_csv(catalog, file, symbol, interval, on_bad=on_bad_bars)  # type: ignore[arg-type]
    except (ValueError, LookupError, OSError) as exc:
        raise fail(str(exc)) from None
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
    from connectors.data.synthetic import DEMO_SYMBOLS, write_demo
    from qmtl.core.intervals import INTERVALS

    if interval not in INTERVALS:
        raise fail(f"unknown interval {interval!r}: use one of {', '.join(INTERVALS)}")
    if bars < 1:
        raise fail(f"--bars must be >= 1, got {bars}")
    names = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else DEMO_SYMBOLS
    catalog = _catalog(data)
    try:
        write_demo(catalog, names, interval=interval, n=bars, seed=seed)
    except (ValueError, LookupError, OSError) as exc:
        raise fail(str(exc)) from None
    console.print(
        f"wrote {bars} synthetic {interval} bars for {', '.join(names)} into {catalog.root}"
    )


@data_app.command("ls")
def ls(data: DataOption = None) -> None:
    """List what the catalog holds: symbol, interval, first and last bar, rows, the ranges it
    covers (more than one means gaps in what was fetched) and the file size."""
    from qmtl.core.times import format_ts

    catalog = _catalog(data)
    try:
        entries = catalog.entries()
        covered = {(s, i): catalog.covered(s, i) for s, i, *_ in entries}
    except LookupError as exc:
        raise fail(str(exc)) from None
    if not entries:
        console.print(f"catalog {catalog.root} is empty: try `qmtl data demo`")
        return
    table = Table(title=f"catalog {catalog.root}")
    for col in ("symbol", "interval", "first", "last", "rows", "covered", "size"):
        table.add_column(col, justify="right" if col in ("rows", "size") else "left")
    for symbol, interval, first, last, rows in entries:
        ranges = covered[(symbol, interval)].ranges
        shown = "; ".join(f"{format_ts(a)} .. {format_ts(b)}" for a, b in ranges[:3])
        if len(ranges) > 3:
            shown += f"; +{len(ranges) - 3} more"
        size = catalog.path(symbol, interval).stat().st_size
        table.add_row(symbol, interval, format_ts(first), format_ts(last), f"{rows:,}", shown,
                      f"{size / 2**20:.1f} MiB")
    console.print(table)


def _symbols(text: str | None) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()] if text else []


def _check_interval(interval: str) -> None:
    from qmtl.core.intervals import INTERVALS

    if interval not in INTERVALS:
        raise fail(f"unknown interval {interval!r}: use one of {', '.join(INTERVALS)}")


def _time(value: str | None, what: str) -> int | None:
    from qmtl.core.times import parse_time

    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise fail(f"{what}: {exc}") from None


@data_app.command()
def backfill(
    symbols: Annotated[str, typer.Option(help="Comma-separated symbols.")],
    interval: Annotated[str, typer.Option(help="Bar interval: 1m 5m 15m 1h 4h 1d.")] = "1d",
    start: Annotated[str | None, typer.Option(help="First bar time (ISO date or time).")] = None,
    end: Annotated[str | None, typer.Option(help="Last bar time (default: now).")] = None,
    origin: OriginOption = None,
    questdb: QuestDBOption = None,
    data: DataOption = None,
) -> None:
    """Fetch what the catalog is missing for a range, ahead of a run (QuestDB first, then the
    origin); what the catalog already covers is not fetched again."""
    import time

    from connectors.data.seamless import describe_errors

    _check_interval(interval)
    names = _symbols(symbols)
    if not names:
        raise fail("--symbols: give at least one symbol")
    lo, hi = _time(start, "--start"), _time(end, "--end")
    if hi is None:
        hi = time.time_ns()
    try:
        with progress_bar() as bars:
            provider = make_provider(data, origin, questdb, bars)
            if provider.origin is None and provider.questdb is None:
                raise fail("nothing to backfill from: give --origin folder:PATH or "
                            "ccxt:EXCHANGE (or set QMTL_ORIGIN), or --questdb")
            if lo is None:
                raise fail("--start: give the first bar time to backfill from")
            if hi < lo:
                raise fail(f"empty range: --start {start} is after --end {end}")
            for name in names:
                provider.ensure(name, interval, lo, hi)
    except typer.Exit:
        raise
    except (*describe_errors(), ValueError, OSError, ImportError) as exc:
        raise fail(str(exc)) from None
    from qmtl.core.times import format_ts

    if not provider.fetches:
        console.print(f"nothing to fetch: the catalog already covers {', '.join(names)} "
                      f"{interval} from {format_ts(lo)} to {format_ts(hi)}", highlight=False)
        return
    table = Table(title=f"backfill into {provider.catalog.root}")
    for col in ("symbol", "from", "range", "bars"):
        table.add_column(col, justify="right" if col == "bars" else "left")
    for f in provider.fetches:
        table.add_row(f.symbol, f.layer, f"{format_ts(f.start)} .. {format_ts(f.end)}",
                      f"{f.rows:,}")
    console.print(table)
    for note in provider.notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)


@data_app.command()
def check(
    files: Annotated[
        list[Path] | None, typer.Argument(help="CSV/Parquet files (default: the catalog).")
    ] = None,
    symbols: Annotated[str | None, typer.Option(help="Catalog symbols (default all).")] = None,
    interval: Annotated[
        str | None, typer.Option(help="Interval of the bars (catalog: default all).")
    ] = None,
    calendar: Annotated[str, typer.Option(help="auto, 24/7 or weekdays.")] = "auto",
    session: Annotated[str | None, typer.Option(help="Session hours, e.g. 09:30-16:00.")] = None,
    tz: Annotated[str, typer.Option(help="Time zone of the session hours.")] = "UTC",
    holidays: Annotated[
        str | None, typer.Option(help="Dates with no session: comma-separated, or a file.")
    ] = None,
    fix: Annotated[bool, typer.Option(help="Write a repaired copy and say what changed.")] = False,
    out: Annotated[Path | None, typer.Option(help="Where --fix writes a file's copy.")] = None,
    limit: Annotated[int, typer.Option(help="Issues listed per symbol or file.")] = 50,
    data: DataOption = None,
) -> None:
    """Report gaps, duplicates, out-of-order rows, NaN, non-positive prices and OHLC
    inconsistencies, per symbol or file. Exit 1 when any is found (after --fix: when the
    repaired copy still has some besides gaps)."""
    from connectors.data.quality import Calendar

    if interval is not None:
        _check_interval(interval)
    try:
        cal = Calendar.parse(calendar, session=session, tz=tz, holidays=_holidays(holidays))
    except ValueError as exc:
        raise fail(str(exc)) from None
    if files and out is not None and len(files) > 1:
        raise fail("--out takes one file: check several files without --out")
    targets = _file_targets(files, interval) if files else _catalog_targets(data, symbols,
                                                                            interval)
    remaining = 0
    for target in targets:
        remaining += _check_one(target, cal, fix, out, limit)
    if remaining:
        raise typer.Exit(1)


def _holidays(text: str | None) -> list[str]:
    if not text:
        return []
    path = Path(text)
    if path.is_file():
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]
    return _symbols(text)


def _file_targets(files: list[Path], interval: str | None) -> list[dict[str, Any]]:
    if interval is None:
        raise fail("--interval: give the interval of the bars in the file(s)")
    return [{"label": str(f), "file": f, "interval": interval} for f in files]


def _catalog_targets(data: Path | None, symbols: str | None,
                     interval: str | None) -> list[dict[str, Any]]:
    catalog = _catalog(data)
    names = _symbols(symbols) or catalog.symbols()
    if not names:
        raise fail(f"catalog {catalog.root} is empty: nothing to check")
    targets = []
    for name in names:
        intervals = [interval] if interval else catalog.intervals(name)
        if not intervals or (interval and interval not in catalog.intervals(name)):
            raise fail(f"no {interval or ''} bars for {name!r} in catalog {catalog.root}; "
                        f"symbols: {', '.join(catalog.symbols()) or 'none'}".replace("no  ", "no "))
        for i in intervals:
            targets.append({"label": f"{name} {i}", "catalog": catalog, "symbol": name,
                            "interval": i})
    return targets


def _check_one(target: dict[str, Any], cal: Any, fix: bool, out: Path | None,
               limit: int) -> int:
    """Check (and with ``fix`` repair) one file or catalog entry; return problems left."""
    from connectors.data.csv_import import read_bars_file
    from connectors.data.quality import check_bars, repair
    from qmtl.core.times import format_ts

    label, interval = target["label"], target["interval"]
    try:
        if "file" in target:
            bars = read_bars_file(target["file"])
        else:
            bars = target["catalog"].read(target["symbol"], interval)
    except (ValueError, LookupError, OSError) as exc:
        err_console.print(f"[bold red]{label}:[/] {exc}", highlight=False, soft_wrap=True)
        return 1
    issues = check_bars(bars, interval, cal)
    n = len(bars["ts"])
    if not issues:
        console.print(f"{label}: {n:,} bars, no issues", highlight=False, soft_wrap=True)
        return 0
    kinds: dict[str, int] = {}
    for issue in issues:
        kinds[issue.kind] = kinds.get(issue.kind, 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in kinds.items())
    table = Table(title=f"{label}: {n:,} bars, {len(issues)} issues ({summary})")
    for col in ("issue", "time", "bars", "detail"):
        table.add_column(col, justify="right" if col == "bars" else "left")
    for issue in issues[:limit]:
        table.add_row(issue.kind, format_ts(issue.ts), str(issue.count), issue.detail)
    if len(issues) > limit:
        table.caption = f"and {len(issues) - limit} more (--limit)"
    console.print(table)
    if not fix:
        return len(issues)
    fixed, changes = repair(bars)
    where = _write_fixed(target, fixed, out)
    for change in changes:
        console.print(f"  fixed: {change}", highlight=False, soft_wrap=True)
    if not changes:
        console.print("  nothing --fix can repair", highlight=False)
    left = [i for i in check_bars(fixed, interval, cal) if i.kind != "gap"]
    gaps = sum(1 for i in check_bars(fixed, interval, cal) if i.kind == "gap")
    console.print(f"  wrote {where}" + (f"; {gaps} gaps remain: fill them with "
                                        "`qmtl data backfill`" if gaps else ""),
                  highlight=False, soft_wrap=True)
    return len(left)


def _write_fixed(target: dict[str, Any], fixed: dict[str, Any], out: Path | None) -> Path:
    """Write the repaired copy: next to a file (or to ``out``); for a catalog entry, in place
    (atomically) after keeping the original beside it."""
    import datetime as dt
    import shutil

    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    if "file" in target:
        src: Path = target["file"]
        name = src.name
        suffix = ".parquet" if name.lower().endswith(".parquet") else ".csv"
        stem = name[: -len(suffix)] if name.lower().endswith(suffix) else src.stem
        dest = out or src.with_name(f"{stem}.fixed{suffix}")
        table = pa.table({k: fixed[k] for k in ("ts", "open", "high", "low", "close", "volume")})
        tmp = dest.with_name(f".{dest.name}.tmp")
        if suffix == ".parquet":
            pq.write_table(table, tmp)
        else:
            ts = fixed["ts"]
            if len(ts) and not (ts % 10**9).any():  # whole seconds: readable ISO times (UTC)
                text = np.datetime_as_string(ts.astype("datetime64[ns]"), unit="s")
                table = table.set_column(0, "datetime", pa.array(text))
            pcsv.write_csv(table, tmp, pcsv.WriteOptions(quoting_style="none"))
        tmp.replace(dest)
        return dest
    catalog, symbol, interval = target["catalog"], target["symbol"], target["interval"]
    path = catalog.path(symbol, interval)
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    keep = path.with_name(f"bars.orig-{stamp}.parquet")
    with catalog.lock(symbol, interval):
        covered = catalog.covered(symbol, interval).ranges
        shutil.copy2(path, keep)
        catalog.write(symbol, interval, fixed, covered=covered, replace=True)
    return path.with_name(f"{path.name} (original kept as {keep.name})")
