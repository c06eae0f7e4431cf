"""Bar files: read CSV and Parquet files of bars (case-insensitive columns, common time
formats), import them into the catalog, and write a repaired copy back.

The time column is the one named by ``time_column``, else one of ``ts``, ``date``,
``datetime``, ``timestamp`` or ``time``, else an unnamed first column (the index
``pandas.DataFrame.to_csv`` writes). It holds ISO dates, ISO datetimes (naive means UTC), or
integer epoch seconds, milliseconds, microseconds or nanoseconds (told apart by magnitude);
the time given is taken as the bar's close time. ``volume`` is optional (0.0 when absent);
``open high low close`` are required. Errors say which file, row (counting from 1, the first
bar) or line, and show what they quote with control characters escaped
(:func:`printable`), so a broken file cannot drive the terminal.

>>> import tempfile, pathlib
>>> f = pathlib.Path(tempfile.mkdtemp()) / "x.csv"
>>> _ = f.write_text("Date,Open,High,Low,Close\\n2024-01-02,1,2,0.5,1.5\\n")
>>> b = read_bars_csv(f)
>>> b["ts"].tolist(), b["close"].tolist(), b["volume"].tolist()
([1704153600000000000], [1.5], [0.0])
>>> _ = f.write_text(",Open,High,Low,Close\\n2024-01-02,1,2,0.5,1.5\\n")  # a pandas index
>>> read_bars_csv(f)["ts"].tolist()
[1704153600000000000]
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from connectors.data.catalog import Catalog
from qmtl.core.bars import Batch, validate_bars
from qmtl.core.contracts import BAR_COLUMNS
from qmtl.core.errors import QmtlError
from qmtl.core.times import parse_time

TIME_COLUMNS = ("date", "datetime", "timestamp", "time")
PRICE_COLUMNS = ("open", "high", "low", "close")
UNNAMED = re.compile(r"^(|unnamed: ?0)$")
"""Names of an unnamed first column: empty (``to_csv``) or ``Unnamed: 0`` (read back)."""


def printable(text: str) -> str:
    """``text`` with control and other non-printable characters escaped as Python would
    (``\\x1b``, ``\\x00``, ``\\n``...): safe to show on a terminal; other text unchanged.

    >>> printable("1,\\x1b[31mred\\x00,é")
    '1,\\\\x1b[31mred\\\\x00,é'
    """
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


class BarFileError(QmtlError, ValueError):
    """A bar file that cannot be read as bars; the message names the file (first, unless
    ``message`` does) and shows what it quotes escaped (see :func:`printable`).

    >>> str(BarFileError("x.csv", "row 2: no time \\x1b"))
    'x.csv: row 2: no time \\\\x1b'
    >>> str(BarFileError("x.csv", "CSV file not found: x.csv"))
    'CSV file not found: x.csv'
    """

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = Path(path)
        super().__init__(printable(message if str(path) in message else f"{path}: {message}"))


def _epoch_to_ns(values: np.ndarray) -> np.ndarray:
    """Integer epoch times in s/ms/us/ns -> ns, by magnitude of the first value."""
    if len(values) == 0:
        return values.astype(np.int64)
    first = abs(int(values[0]))
    scale = 10**9 if first < 10**11 else 10**6 if first < 10**14 else 10**3 if first < 10**17 else 1
    return values.astype(np.int64) * scale


def _parse_each(values: list[str | None], path: Path, name: str) -> np.ndarray:
    """Times one by one (the slow path for what is not ``%Y-%m-%dT%H:%M:%S``)."""
    out = np.empty(len(values), dtype=np.int64)
    for i, value in enumerate(values):
        if value is None:
            raise BarFileError(path, f"column {name!r}, row {i + 1}: no time")
        try:
            out[i] = parse_time(value)
        except ValueError as exc:
            raise BarFileError(path, f"column {name!r}, row {i + 1}: {exc}") from None
    return out


def _time_to_ns(column: pa.ChunkedArray, path: Path, name: str) -> np.ndarray:
    kind = column.type
    if column.null_count:
        row = int(pc.index(pc.is_null(column), True).as_py()) + 1
        raise BarFileError(path, f"column {name!r}, row {row}: no time")
    if pa.types.is_integer(kind):
        return _epoch_to_ns(column.to_numpy())
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        if pa.types.is_timestamp(kind) and kind.tz is None:
            column = pc.assume_timezone(column, "UTC")
        return column.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        parsed = pc.strptime(column, format="%Y-%m-%dT%H:%M:%S", unit="ns", error_is_null=True)
        if parsed.null_count:
            return _parse_each(column.to_pylist(), path, name)
        return parsed.cast(pa.int64()).to_numpy()
    if pa.types.is_null(kind):  # a header and no rows
        raise BarFileError(path, "no bars: the file has a header and no rows")
    raise BarFileError(path, f"column {name!r} has type {kind}, expected dates or times")


def _shown(names: list[str]) -> str:
    return ", ".join(repr(n) if n.strip() else "(unnamed)" for n in names)


def _time_column(table: pa.Table, path: Path, time_column: str | None) -> str:
    """The name of ``table``'s time column (see the module docstring)."""
    names = table.column_names
    lower = {name.lower().strip(): name for name in names}
    if time_column is not None:
        found = lower.get(time_column.lower().strip())
        if found is None:
            raise BarFileError(path, f"no column {time_column!r} (the time column asked for); "
                               f"found: {_shown(names)}")
        return found
    named = next((lower[c] for c in ("ts", *TIME_COLUMNS) if c in lower), None)
    if named is not None:
        return named
    if names and UNNAMED.match(names[0].lower().strip()):
        first = table.column(0)
        if pa.types.is_integer(first.type) and np.array_equal(
            first.to_numpy(), np.arange(len(first))
        ):
            raise BarFileError(path, "the unnamed first column holds row numbers 0, 1, 2..., "
                               "not times: name the time column (--time-column)")
        return names[0]
    raise BarFileError(
        path, f"missing time column (one of {', '.join(TIME_COLUMNS)}, or an unnamed first "
        f"column); found: {_shown(names)}; name it with --time-column"
    )


def _find_line(path: Path, row_text: str) -> tuple[int, str] | None:
    """The line of ``path`` (from 1) that pyarrow quotes as ``row_text`` in a parse error (it
    does not say which line), and that line as bytes with the undecodable ones escaped
    (``\\xff``); None when not found or the file is compressed."""
    if path.suffix.lower() in (".gz", ".bz2", ".zst", ".lz4"):
        return None
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            line = raw.rstrip(b"\r\n")
            if line.decode("utf-8", "replace") == row_text:
                return n, line.decode("utf-8", "backslashreplace")
    return None


def _read_error(path: Path, exc: pa.ArrowInvalid) -> BarFileError:
    text = str(exc)
    bad = re.match(r"CSV parse error: (Expected \d+ columns?, got \d+): (.*)$", text, re.S)
    if not bad:
        return BarFileError(path, f"cannot read as CSV: {text}")
    what, row = bad.group(1).lower(), bad.group(2)
    found = _find_line(path, row)
    if found is None:
        return BarFileError(path, f"cannot read as CSV: {what} in {row!r}")
    line, row = found
    return BarFileError(path, f"cannot read as CSV: line {line}: {what} in '{row}'")


def read_bars_csv(path: str | Path, time_column: str | None = None) -> Batch:
    """Bars from a CSV file, in file order (see the module docstring).

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.csv"
    >>> _ = f.write_text("day,open,high,low,close\\n2024-01-02,1,2,0.5,1.5\\n")
    >>> read_bars_csv(f, time_column="Day")["ts"].tolist()
    [1704153600000000000]
    >>> _ = f.write_text("date,open,high,low,close\\n2024-01-02,1,2,0.5\\x1b[31m\\n")
    >>> read_bars_csv(f)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    connectors.data.csv_import.BarFileError: ...: line 2: expected 5 columns, got 4 ...\\x1b[31m'
    """
    path = Path(path)
    if not path.is_file():
        raise BarFileError(path, f"CSV file not found: {path}")
    try:
        table = pcsv.read_csv(path)
        table.column_names  # noqa: B018 -- names are decoded lazily; a bad one raises here
    except pa.ArrowInvalid as exc:
        raise _read_error(path, exc) from None
    except UnicodeDecodeError:
        raise BarFileError(path, "line 1: the header is not UTF-8 text (save the file as "
                           "UTF-8)") from None
    return bars_from_table(table, path, time_column)


def read_bars_file(path: str | Path, time_column: str | None = None) -> Batch:
    """Bars from a ``.csv`` (optionally ``.gz``/``.bz2``) or ``.parquet`` file, in file order;
    Parquet files may use ``ts`` (int64 ns) or any of the CSV time columns.

    >>> import tempfile, pathlib, pyarrow.parquet as pq
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.parquet"
    >>> pq.write_table(pa.table({"ts": [5], "open": [1.0], "high": [1.0], "low": [1.0],
    ...                          "close": [1.0]}), f)
    >>> read_bars_file(f)["ts"].tolist()
    [5]
    """
    path = Path(path)
    if path.suffix.lower() != ".parquet":
        return read_bars_csv(path, time_column)
    if not path.is_file():
        raise BarFileError(path, f"Parquet file not found: {path}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise BarFileError(path, f"corrupt Parquet file {path}: {exc}") from None
    return bars_from_table(table, path, time_column)


def _first_non_number(column: pa.ChunkedArray) -> tuple[int, str]:
    """Row (from 1) and text of the first value that does not convert to a number, as pyarrow
    judges it: halving the column until one value is left (a few casts, not one per row)."""
    lo, hi = 0, len(column)  # the first bad value is in [lo, hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            column.slice(lo, mid - lo).cast(pa.float64())
            lo = mid
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
    return lo + 1, str(column[lo].as_py())


def bars_from_table(table: pa.Table, path: str | Path, time_column: str | None = None) -> Batch:
    """Bar columns of ``table`` matched case-insensitively (``path`` names it in errors).

    >>> bars_from_table(pa.table({"t": [1], "close": [1.0]}), "x.csv")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    connectors.data.csv_import.BarFileError: x.csv: missing time column ...; found: 't', 'close';...
    """
    path = Path(path)
    time_col = _time_column(table, path, time_column)
    lower = {name.lower().strip(): name for name in table.column_names}
    for c in PRICE_COLUMNS:
        if c not in lower:
            raise BarFileError(path, f"missing column {c!r}; found: {_shown(table.column_names)}")
    column = table.column(time_col)
    if time_col.lower().strip() == "ts" and pa.types.is_integer(column.type):
        ts = column.to_numpy().astype(np.int64)  # the catalog's own layout: ns already
    else:
        ts = _time_to_ns(column, path, time_col)
    out = {"ts": ts}
    for c in BAR_COLUMNS[1:]:
        if c not in lower:
            out[c] = np.zeros(len(ts))
            continue
        values = table.column(lower[c])
        try:
            out[c] = values.cast(pa.float64()).to_numpy()
        except pa.ArrowInvalid:
            row, text = _first_non_number(values)
            raise BarFileError(path, f"column {lower[c]!r}, row {row}: {text!r} is not a number"
                               ) from None
        except pa.ArrowNotImplementedError:
            raise BarFileError(path, f"column {lower[c]!r} has type {values.type}, expected "
                               "numbers") from None
    return out


def import_csv(
    catalog: Catalog,
    path: str | Path,
    symbol: str,
    interval: str,
    on_bad: Literal["raise", "drop"] = "raise",
    time_column: str | None = None,
) -> tuple[int, int]:
    """Read ``path`` and store its bars as ``symbol`` at ``interval``; return ``(rows
    imported, rows dropped)``. Nothing is written when a bar is bad and ``on_bad="raise"``.

    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "x.csv").write_text("Date,Open,High,Low,Close\\n2024-01-02,1,2,0.5,1.5\\n")
    >>> import_csv(Catalog(root / "cat"), root / "x.csv", "X", "1d")
    (1, 0)
    """
    bars = read_bars_csv(path, time_column)
    order = np.argsort(bars["ts"], kind="stable") if on_bad == "drop" else slice(None)
    bars = {k: v[order] for k, v in bars.items()}
    bars, dropped = validate_bars(symbol, bars, on_bad=on_bad)
    catalog.write(symbol, interval, bars)
    return len(bars["ts"]), dropped


def write_bars_file(bars: Batch, dest: Path) -> None:
    """Write ``bars`` to ``dest`` atomically: Parquet when its name ends in ``.parquet``, else
    CSV with ISO UTC times in a ``datetime`` column when every time is a whole second (epoch
    nanoseconds in ``ts`` otherwise).

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "x.csv"
    >>> one = {"ts": np.array([86_400 * 10**9])} | {c: np.ones(1) for c in PRICE_COLUMNS}
    >>> write_bars_file(one | {"volume": np.zeros(1)}, f)
    >>> f.read_text().splitlines()
    ['"datetime","open","high","low","close","volume"', '1970-01-02T00:00:00,1,1,1,1,0']
    """
    table = pa.table({k: bars[k] for k in BAR_COLUMNS})
    tmp = dest.with_name(f".{dest.name}.tmp")
    if dest.name.lower().endswith(".parquet"):
        pq.write_table(table, tmp)
    else:
        ts = bars["ts"]
        if len(ts) and not (ts % 10**9).any():  # whole seconds: readable ISO times (UTC)
            text = np.datetime_as_string(ts.astype("datetime64[ns]"), unit="s")
            table = table.set_column(0, "datetime", pa.array(text))
        pcsv.write_csv(table, tmp, pcsv.WriteOptions(quoting_style="none"))
    tmp.replace(dest)
