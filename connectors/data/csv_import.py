"""Import bars from CSV files: case-insensitive columns, common time formats.

The time column is one of ``date``, ``datetime``, ``timestamp`` or ``time`` and holds ISO
dates, ISO datetimes (naive means UTC), or integer epoch seconds, milliseconds, microseconds
or nanoseconds (told apart by magnitude). The time given is taken as the bar's close time.
``volume`` is optional (0.0 when absent); ``open high low close`` are required.

>>> import tempfile, pathlib
>>> f = pathlib.Path(tempfile.mkdtemp()) / "x.csv"
>>> _ = f.write_text("Date,Open,High,Low,Close\\n2024-01-02,1,2,0.5,1.5\\n")
>>> b = read_bars_csv(f)
>>> b["ts"].tolist(), b["close"].tolist(), b["volume"].tolist()
([1704153600000000000], [1.5], [0.0])
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from connectors.data.catalog import Catalog
from qmtl.core.bars import validate_bars

TIME_COLUMNS = ("date", "datetime", "timestamp", "time")
PRICE_COLUMNS = ("open", "high", "low", "close")


def _epoch_to_ns(values: np.ndarray) -> np.ndarray:
    """Integer epoch times in s/ms/us/ns -> ns, by magnitude of the first value."""
    if len(values) == 0:
        return values.astype(np.int64)
    first = abs(int(values[0]))
    scale = 10**9 if first < 10**11 else 10**6 if first < 10**14 else 10**3 if first < 10**17 else 1
    return values.astype(np.int64) * scale


def _time_to_ns(column: pa.ChunkedArray, path: Path, name: str) -> np.ndarray:
    kind = column.type
    if pa.types.is_integer(kind):
        return _epoch_to_ns(column.to_numpy())
    if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
        if pa.types.is_timestamp(kind) and kind.tz is None:
            column = pc.assume_timezone(column, "UTC")
        return column.cast(pa.timestamp("ns", tz="UTC")).cast(pa.int64()).to_numpy()
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        try:
            parsed = pc.strptime(column, format="%Y-%m-%dT%H:%M:%S", unit="ns", error_is_null=True)
            if parsed.null_count:
                from qmtl.core.times import parse_time

                return np.array([parse_time(v) for v in column.to_pylist()], dtype=np.int64)
            return parsed.cast(pa.int64()).to_numpy()
        except ValueError as exc:
            raise ValueError(f"{path}: column {name!r}: {exc}") from None
    raise ValueError(f"{path}: column {name!r} has type {kind}, expected dates or times")


def read_bars_csv(path: str | Path) -> dict[str, np.ndarray]:
    """Bars from a CSV file, in file order (see the module docstring)."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"CSV file not found: {path}")
    try:
        table = pcsv.read_csv(path)
    except pa.ArrowInvalid as exc:
        raise ValueError(f"{path}: cannot read as CSV: {exc}") from None
    return bars_from_table(table, path)


def read_bars_file(path: str | Path) -> dict[str, np.ndarray]:
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
        return read_bars_csv(path)
    if not path.is_file():
        raise ValueError(f"Parquet file not found: {path}")
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ValueError(f"corrupt Parquet file {path}: {exc}") from None
    return bars_from_table(table, path)


def bars_from_table(table: pa.Table, path: str | Path) -> dict[str, np.ndarray]:
    """Bar columns of ``table`` matched case-insensitively (``path`` names it in errors)."""
    path = Path(path)
    lower = {name.lower().strip(): name for name in table.column_names}
    found = ", ".join(table.column_names)
    time_col = next((lower[c] for c in ("ts", *TIME_COLUMNS) if c in lower), None)
    if time_col is None:
        raise ValueError(
            f"{path}: missing time column (one of {', '.join(TIME_COLUMNS)}); found: {found}"
        )
    for c in PRICE_COLUMNS:
        if c not in lower:
            raise ValueError(f"{path}: missing column {c!r}; found: {found}")
    column = table.column(time_col)
    if time_col.lower().strip() == "ts" and pa.types.is_integer(column.type):
        ts = column.to_numpy().astype(np.int64)  # the catalog's own layout: ns already
    else:
        ts = _time_to_ns(column, path, time_col)
    out = {"ts": ts}
    for c in (*PRICE_COLUMNS, "volume"):
        if c in lower:
            try:
                out[c] = table.column(lower[c]).cast(pa.float64()).to_numpy()
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                raise ValueError(f"{path}: column {lower[c]!r} is not numeric: {exc}") from None
        else:
            out[c] = np.zeros(len(out["ts"]))
    return out


def import_csv(
    catalog: Catalog,
    path: str | Path,
    symbol: str,
    interval: str,
    on_bad: Literal["raise", "drop"] = "raise",
) -> tuple[int, int]:
    """Read ``path`` and store its bars as ``symbol`` at ``interval``; return ``(rows
    imported, rows dropped)``. Nothing is written when a bar is bad and ``on_bad="raise"``.
    """
    bars = read_bars_csv(path)
    order = np.argsort(bars["ts"], kind="stable") if on_bad == "drop" else slice(None)
    bars = {k: v[order] for k, v in bars.items()}
    bars, dropped = validate_bars(symbol, bars, on_bad=on_bad)
    catalog.write(symbol, interval, bars)
    return len(bars["ts"]), dropped
