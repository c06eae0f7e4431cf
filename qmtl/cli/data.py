"""``qmtl data``: the bar catalog and the layers around it (import, demo data, list coverage,
backfill ahead, quality checks).

>>> from typer.testing import CliRunner
>>> CliRunner().invoke(data_app, ["--help"]).exit_code
0
"""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from connectors.data.calendars import Calendar
from connectors.data.catalog import Catalog, default_data_dir, did_you_mean
from connectors.data.csv_import import import_csv, read_bars_file, write_bars_file
from connectors.data.quality import check_bars, repair
from connectors.data.seamless import describe_errors
from connectors.data.synthetic import DEMO_SYMBOLS, write_demo
from qmtl.cli.common import (
    console,
    err_console,
    fail,
    make_provider,
    progress_bar,
)
from qmtl.cli.terminal import safe_markup, safe_text
from qmtl.core.bars import Batch
from qmtl.core.intervals import INTERVALS
from qmtl.core.times import format_ts, parse_time

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
TimeColumnOption = Annotated[
    str | None,
    typer.Option(
        help="Name of the time column, when it is not date, datetime, timestamp, "
        "time or an unnamed first column."
    ),
]
CALENDAR_HELP = (
    "When bars are expected: auto (weekdays if the data has no weekend bar, else 24/7), 24/7 "
    "(or crypto), weekdays, fx (24x5: Sunday 17:00 to Friday 17:00 New York), or an exchange "
    "by ISO MIC code with its holidays, early closes and breaks (XNYS for NYSE/Nasdaq, XLON, "
    "XETR, XPAR, XTKS, XHKG, XSHG, XTSE, XASX, ...; aliases such as NYSE work; an unknown "
    "name lists them all). Exchanges need the calendars extra."
)


def _fail(message: str) -> typer.Exit:
    """``fail`` for a message that quotes user input: shown as typed, never as markup."""
    return fail(safe_markup(message, lines=True))


def _catalog(data: Path | None) -> Catalog:
    return Catalog(data or default_data_dir())


@data_app.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            help="CSV file with columns date, open, high, low, close and optionally volume."
        ),
    ],
    symbol: Annotated[str, typer.Option(help="Symbol to store the bars under.")],
    interval: Annotated[str, typer.Option(help="Bar interval: 1m 5m 15m 1h 4h 1d.")] = "1d",
    data: DataOption = None,
    on_bad_bars: Annotated[str, typer.Option(help="raise (default) or drop.")] = "raise",
    time_column: TimeColumnOption = None,
) -> None:
    """Import a CSV file of bars into the catalog (nothing is written when it has an error)."""
    _check_interval(interval)
    if on_bad_bars not in ("raise", "drop"):
        raise _fail(f"--on-bad-bars must be 'raise' or 'drop', got {on_bad_bars!r}")
    catalog = _catalog(data)
    try:
        rows, dropped = import_csv(
            catalog,
            file,
            symbol,
            interval,
            time_column=time_column,
            on_bad="drop" if on_bad_bars == "drop" else "raise",
        )
    except (ValueError, LookupError, OSError) as exc:
        raise _fail(str(exc)) from None
    note = f" ({dropped} bad bars dropped)" if dropped else ""
    console.print(
        safe_text(f"imported {rows} {interval} bars of {symbol} into {catalog.root}{note}"),
        markup=False,
        highlight=False,
    )


@data_app.command()
def demo(
    data: DataOption = None,
    symbols: Annotated[str | None, typer.Option(help="Comma-separated symbols.")] = None,
    interval: Annotated[str, typer.Option(help="Bar interval.")] = "1d",
    bars: Annotated[int, typer.Option(help="Bars per symbol.")] = 2520,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
) -> None:
    """Write deterministic synthetic bars (no download) for the demo and experiments."""
    _check_interval(interval)
    if bars < 1:
        raise fail(f"--bars must be >= 1, got {bars}")
    names = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else DEMO_SYMBOLS
    catalog = _catalog(data)
    try:
        write_demo(catalog, names, interval=interval, n=bars, seed=seed)
    except (ValueError, LookupError, OSError) as exc:
        raise _fail(str(exc)) from None
    console.print(
        f"wrote {bars} synthetic {interval} bars for {', '.join(names)} into {catalog.root}",
        markup=False,
    )


@data_app.command("ls")
def ls(data: DataOption = None) -> None:
    """List what the catalog holds: symbol, interval, first and last bar, rows, the ranges it
    covers (more than one means gaps in what was fetched) and the file size. An entry that
    cannot be read (a corrupt manifest, a missing or damaged part) is reported on its own line
    and the rest are listed; exit 1 when there is one."""
    catalog = _catalog(data)
    rows, broken = [], []
    for symbol in catalog.symbols():
        for interval in catalog.intervals(symbol):
            try:
                catalog.verify(symbol, interval)  # every part's footer, against the manifest
                cov = catalog.coverage(symbol, interval)
                if cov is None:
                    continue
                ranges = catalog.covered(symbol, interval).ranges
                size = catalog.nbytes(symbol, interval)
            except (LookupError, OSError) as exc:
                broken.append(f"{symbol} {interval}: {exc}")
                continue
            rows.append((symbol, interval, *cov, ranges, size))
    if not rows and not broken:
        console.print(f"catalog {catalog.root} is empty: try `qmtl data demo`")
        return
    if rows:
        table = Table(title=safe_markup(f"catalog {catalog.root}"))
        for col in ("symbol", "interval", "first", "last", "rows", "covered", "size"):
            table.add_column(col, justify="right" if col in ("rows", "size") else "left")
        for symbol, interval, first, last, n, ranges, size in rows:
            shown = "; ".join(f"{format_ts(a)} .. {format_ts(b)}" for a, b in ranges[:3])
            if len(ranges) > 3:
                shown += f"; +{len(ranges) - 3} more"
            table.add_row(
                safe_markup(symbol),
                safe_markup(interval),
                format_ts(first),
                format_ts(last),
                f"{n:,}",
                shown,
                f"{size / 2**20:.1f} MiB",
            )
        console.print(table)
    for line in broken:
        err_console.print(
            f"[bold red]error:[/] {safe_markup(line)}", highlight=False, soft_wrap=True
        )
    if broken:
        raise typer.Exit(1)


def _symbols(text: str | None) -> list[str]:
    return [s.strip() for s in text.split(",") if s.strip()] if text else []


def _check_interval(interval: str) -> None:
    if interval not in INTERVALS:
        raise _fail(f"unknown interval {interval!r}: use one of {', '.join(INTERVALS)}")


def _time(value: str | None, what: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as exc:
        raise _fail(f"{what}: {exc}") from None


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
                raise fail(
                    "nothing to backfill from: give --origin folder:PATH or "
                    "ccxt:EXCHANGE (or set QMTL_ORIGIN), or --questdb"
                )
            if lo is None:
                raise fail("--start: give the first bar time to backfill from")
            if hi < lo:
                raise _fail(f"empty range: --start {start} is after --end {end}")
            for name in names:
                provider.ensure(name, interval, lo, hi)
    except typer.Exit:
        raise
    except (*describe_errors(), ValueError, OSError, ImportError) as exc:
        raise _fail(str(exc)) from None
    if not provider.fetches:
        console.print(
            f"nothing to fetch: the catalog already covers {', '.join(names)} "
            f"{interval} from {format_ts(lo)} to {format_ts(hi)}",
            highlight=False,
            markup=False,
        )
        return
    table = Table(title=safe_markup(f"backfill into {provider.catalog.root}"))
    for col in ("symbol", "from", "range", "bars"):
        table.add_column(col, justify="right" if col == "bars" else "left")
    for f in provider.fetches:
        span = f"{format_ts(f.start)} .. {format_ts(f.end)}"
        table.add_row(safe_markup(f.symbol), safe_markup(f.layer), span, f"{f.rows:,}")
    console.print(table)
    for note in provider.notes:
        err_console.print(f"[yellow]note:[/] {safe_markup(note)}", highlight=False, soft_wrap=True)


@data_app.command()
def check(
    files: Annotated[
        list[Path] | None, typer.Argument(help="CSV/Parquet files (default: the catalog).")
    ] = None,
    symbols: Annotated[str | None, typer.Option(help="Catalog symbols (default all).")] = None,
    interval: Annotated[
        str | None,
        typer.Option(help="Interval of the bars (files: default 1d; catalog: default all)."),
    ] = None,
    calendar: Annotated[str, typer.Option(help=CALENDAR_HELP)] = "auto",
    session: Annotated[
        str | None, typer.Option(help="Session hours of weekdays, e.g. 09:30-16:00.")
    ] = None,
    tz: Annotated[str, typer.Option(help="Time zone of the session hours.")] = "UTC",
    holidays: Annotated[
        str | None, typer.Option(help="Dates with no session: comma-separated, or a file.")
    ] = None,
    time_column: TimeColumnOption = None,
    fix: Annotated[bool, typer.Option(help="Write a repaired copy and say what changed.")] = False,
    out: Annotated[Path | None, typer.Option(help="Where --fix writes a file's copy.")] = None,
    limit: Annotated[int, typer.Option(help="Issues listed per symbol or file.")] = 50,
    data: DataOption = None,
) -> None:
    """Report gaps, duplicates, out-of-order rows, NaN, non-positive prices and OHLC
    inconsistencies, per symbol or file; rows count from 1 at the first bar. Exit 1 when any
    is found (after --fix: when the repaired copy still has some besides gaps)."""
    if interval is not None:
        _check_interval(interval)
    try:
        cal = Calendar.parse(calendar, session=session, tz=tz, holidays=_holidays(holidays))
    except ValueError as exc:
        raise _fail(str(exc)) from None
    if files and out is not None and len(files) > 1:
        raise fail("--out takes one file: check several files without --out")
    if time_column is not None and not files:
        raise fail("--time-column goes with files: the catalog's own bars have their times")
    targets = (
        _file_targets(files, interval, time_column)
        if files
        else _catalog_targets(data, symbols, interval)
    )
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


def _file_targets(
    files: list[Path], interval: str | None, time_column: str | None
) -> list[dict[str, Any]]:
    interval = interval or "1d"  # as data import
    return [
        {"label": str(f), "file": f, "interval": interval, "time_column": time_column}
        for f in files
    ]


def _catalog_targets(
    data: Path | None, symbols: str | None, interval: str | None
) -> list[dict[str, Any]]:
    catalog = _catalog(data)
    names = _symbols(symbols) or catalog.symbols()
    if not names:
        raise _fail(f"catalog {catalog.root} is empty: nothing to check")
    targets = []
    for name in names:
        intervals = [interval] if interval else catalog.intervals(name)
        if not intervals or (interval and interval not in catalog.intervals(name)):
            what = f"{interval} bars" if interval else "bars"
            stored = catalog.symbols()
            raise _fail(
                f"no {what} for {name!r} in catalog {catalog.root}; "
                f"{did_you_mean(name, stored)}symbols: {', '.join(stored) or 'none'}"
            )
        for i in intervals:
            targets.append(
                {"label": f"{name} {i}", "catalog": catalog, "symbol": name, "interval": i}
            )
    return targets


def _read_target(target: dict[str, Any]) -> Batch:
    if "file" in target:
        return read_bars_file(target["file"], target["time_column"])
    return target["catalog"].read(target["symbol"], target["interval"])


def _check_one(
    target: dict[str, Any], cal: Calendar, fix: bool, out: Path | None, limit: int
) -> int:
    """Check (and with ``fix`` repair) one file or catalog entry; return problems left."""
    label, interval = safe_markup(target["label"]), target["interval"]
    try:
        bars = _read_target(target)
        issues = check_bars(bars, interval, cal)
    except (ValueError, LookupError, OSError) as exc:
        said = str(exc) if target["label"] in str(exc) else f"{target['label']}: {exc}"
        err_console.print(
            f"[bold red]error:[/] {safe_markup(said)}", highlight=False, soft_wrap=True
        )
        return 1
    n = len(bars["ts"])
    if not issues:
        console.print(f"{label}: {n:,} bars, no issues", highlight=False, soft_wrap=True)
        return 0
    kinds: dict[str, int] = {}
    for issue in issues:
        kinds[issue.kind] = kinds.get(issue.kind, 0) + 1
    summary = ", ".join(f"{v} {k}" for k, v in kinds.items())
    table = Table(title=f"{label}: {n:,} bars, {len(issues)} issues ({summary})")
    for col in ("issue", "time", "row", "bars", "detail"):
        table.add_column(col, justify="right" if col in ("row", "bars") else "left")
    for issue in issues[:limit]:
        row = "" if issue.row is None else str(issue.row)
        detail = issue.detail.removeprefix(f"row {row}: ")  # the row has its own column
        table.add_row(issue.kind, format_ts(issue.ts), row, str(issue.count), safe_markup(detail))
    more = f"; and {len(issues) - limit} more (--limit)" if len(issues) > limit else ""
    table.caption = f"row 1 is the first bar (of a CSV with a header: row N is line N+1){more}"
    console.print(table)
    if "gap" in kinds and not cal.exchange and cal.kind != "fx":
        err_console.print(
            "[yellow]note:[/] a market's holidays and closed hours are not gaps: give its "
            "calendar, e.g. --calendar XNYS (an exchange by ISO MIC code), fx (24x5) or "
            "crypto (24/7)",
            highlight=False,
            soft_wrap=True,
        )
    if not fix:
        return len(issues)
    fixed, changes = repair(bars)
    where = _write_fixed(target, fixed, out)
    for change in changes:
        console.print(f"  fixed: {change}", highlight=False, soft_wrap=True)
    if not changes:
        console.print("  nothing --fix can repair", highlight=False)
    after = check_bars(fixed, interval, cal)
    left = [i for i in after if i.kind != "gap"]
    gaps = len(after) - len(left)
    console.print(
        f"  wrote {safe_markup(str(where))}"
        + (f"; {gaps} gaps remain: fill them with `qmtl data backfill`" if gaps else ""),
        highlight=False,
        soft_wrap=True,
    )
    return len(left)


def _write_fixed(target: dict[str, Any], fixed: Batch, out: Path | None) -> Path:
    """Write the repaired copy: next to a file (or to ``out``); for a catalog entry, in place
    (atomically) after keeping the original beside it."""
    if "file" in target:
        src: Path = target["file"]
        name = src.name
        suffix = ".parquet" if name.lower().endswith(".parquet") else ".csv"
        stem = name[: -len(suffix)] if name.lower().endswith(suffix) else src.stem
        dest = out or src.with_name(f"{stem}.fixed{suffix}")
        write_bars_file(fixed, dest)
        return dest
    catalog, symbol, interval = target["catalog"], target["symbol"], target["interval"]
    folder = catalog.folder(symbol, interval)
    stamp = dt.datetime.now().strftime("%Y%m%dT%H%M%S")
    keep = folder / f"bars.orig-{stamp}.parquet"
    with catalog.lock(symbol, interval):
        covered = catalog.covered(symbol, interval).ranges
        write_bars_file(catalog.read(symbol, interval), keep)  # every part, as one file
        catalog.write(symbol, interval, fixed, covered=covered, replace=True)
    return folder / f"{symbol} {interval} (original kept as {keep.name})"
