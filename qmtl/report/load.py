"""A run to report on: a run folder read back (:func:`load_run`), or a result in memory
(:func:`from_result`).

A run folder is what ``qmtl run --mode backtest`` writes: ``metrics.json`` (the outcome and
every setting) and ``bars.parquet`` (one row per symbol per bar: ``ts``, ``symbol``,
``weight``, ``return``, ``equity`` and, since qmtl kept prices, ``close``). A folder written
before ``close`` existed still loads; only a benchmark needs the closes, and asking for one
then says so.

>>> import tempfile
>>> load_run(tempfile.mkdtemp())
Traceback (most recent call last):
...
qmtl.report.load.ReportError: ... is not a run folder: it has no metrics.json ...
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from qmtl.core.errors import QmtlError
from qmtl.core.intervals import periods_per_year as default_ppy
from qmtl.core.times import format_ts
from qmtl.report.stats import Rows
from qmtl.report.trades import position_changes, round_trips

if TYPE_CHECKING:
    from qmtl.result import BacktestResult

REQUIRED = ("ts", "symbol", "weight", "return", "equity")
"""The columns of ``bars.parquet`` a report needs (``close`` is optional)."""


class ReportError(QmtlError, ValueError):
    """A run folder cannot be reported on (the message says which file and why), or a
    report's option does not fit the run.

    >>> ReportError("x").exit_code
    1
    """


@dataclass
class Run:
    """One run: its ``metrics.json`` document and its rows.

    >>> import numpy as np, pyarrow as pa
    >>> from qmtl.report.stats import Rows
    >>> run = Run("r", {"metrics": {"sharpe": None}, "interval": "1d"},
    ...           Rows(np.array([1]), np.array([0]), ["A"], np.ones(1), np.zeros(1), np.ones(1)))
    >>> run.metrics, run.periods_per_year, run.has_prices
    ({'sharpe': nan}, 252.0, False)
    """

    name: str
    doc: dict[str, Any]
    rows: Rows
    folder: Path | None = None

    @property
    def metrics(self) -> dict[str, float]:
        """The metrics of ``metrics.json`` (null, i.e. not finite, as NaN)."""
        return {k: (math.nan if v is None else float(v))
                for k, v in (self.doc.get("metrics") or {}).items()}

    @property
    def periods_per_year(self) -> float:
        """The run's annualization (its setting, or its interval's default)."""
        ppy = (self.doc.get("settings") or {}).get("periods_per_year")
        if isinstance(ppy, (int, float)) and ppy > 0:
            return float(ppy)
        return float(default_ppy(str(self.doc.get("interval", "1d"))))

    @property
    def has_prices(self) -> bool:
        """Whether the rows carry each bar's close (runs written before they did do not)."""
        return self.rows.close is not None

    def check_benchmark(self, symbol: str | None) -> None:
        """Raise :class:`ReportError` when a benchmark on ``symbol`` cannot be drawn.

        >>> import numpy as np
        >>> from qmtl.report.stats import Rows
        >>> run = Run("r", {}, Rows(np.array([1]), np.array([0]), ["A"], np.ones(1),
        ...                         np.zeros(1), np.ones(1), np.ones(1)))
        >>> run.check_benchmark("B")
        Traceback (most recent call last):
        ...
        qmtl.report.load.ReportError: --benchmark B: the run traded ['A'], not B
        """
        if symbol is not None and not self.has_prices:
            raise ReportError(
                f"--benchmark {symbol}: {self.where} has no prices (bars.parquet has no "
                "close column: it was written by an older qmtl or a live run); rerun the "
                "backtest to get them"
            )
        if symbol is not None and symbol not in self.rows.symbols:
            raise ReportError(
                f"--benchmark {symbol}: the run traded {self.rows.symbols}, not {symbol}"
            )

    @property
    def where(self) -> str:
        """The run folder, or the run's name when it is in memory."""
        return str(self.folder) if self.folder is not None else self.name

    @property
    def label(self) -> str:
        """The run as a page names it: its folder's name (a page is shared: it does not
        show where the run lay on the machine that made it), or its name in memory."""
        return self.folder.name if self.folder is not None else self.name

    def trades(self) -> pa.Table:
        """The round trips (see :mod:`qmtl.report.trades`) as a pyarrow Table."""
        return trades_table(self.rows)

    def position_changes(self) -> pa.Table:
        """The position changes (see :mod:`qmtl.report.trades`) as a pyarrow Table."""
        return changes_table(self.rows)


def trades_table(rows: Rows) -> pa.Table:
    """:func:`~qmtl.report.trades.round_trips` as a pyarrow Table (``exit`` null while a
    trip is open).

    >>> from qmtl.report.stats import Rows
    >>> rows = Rows(np.array([1, 2]), np.zeros(2, int), ["A"], np.array([0.0, 1.0]),
    ...             np.zeros(2), np.ones(2))
    >>> t = trades_table(rows)
    >>> t.column_names, t.column("exit").to_pylist()
    (['symbol', 'side', 'entry', 'exit', 'bars', 'return', 'pnl', 'open'], [None])
    """
    cols = round_trips(rows)
    return pa.table({
        "symbol": pa.array(cols["symbol"].tolist(), pa.string()),
        "side": pa.array(cols["side"].tolist(), pa.string()),
        "entry": pa.array(cols["entry"], pa.int64()),
        "exit": pa.array(cols["exit"], pa.int64(), mask=cols["open"]),
        "bars": pa.array(cols["bars"], pa.int64()),
        "return": pa.array(cols["return"], pa.float64()),
        "pnl": pa.array(cols["pnl"], pa.float64()),
        "open": pa.array(cols["open"], pa.bool_()),
    })


def changes_table(rows: Rows) -> pa.Table:
    """:func:`~qmtl.report.trades.position_changes` as a pyarrow Table.

    >>> from qmtl.report.stats import Rows
    >>> rows = Rows(np.array([1, 2]), np.zeros(2, int), ["A"], np.array([0.0, 1.0]),
    ...             np.zeros(2), np.ones(2))
    >>> changes_table(rows).column_names
    ['ts', 'symbol', 'weight_before', 'weight_after', 'bars', 'return', 'pnl']
    """
    cols = position_changes(rows)
    return pa.table({
        "ts": pa.array(cols["ts"], pa.int64()),
        "symbol": pa.array(cols["symbol"].tolist(), pa.string()),
        "weight_before": pa.array(cols["weight_before"], pa.float64()),
        "weight_after": pa.array(cols["weight_after"], pa.float64()),
        "bars": pa.array(cols["bars"], pa.int64()),
        "return": pa.array(cols["return"], pa.float64()),
        "pnl": pa.array(cols["pnl"], pa.float64()),
    })


def _row(table: pa.Table, row: int) -> str:
    """Where row ``row`` of a ``bars.parquet`` table is, for an error message.

    >>> _row(pa.table({"ts": [0], "symbol": ["A"]}), 0)
    'row 0 (ts 1970-01-01T00:00:00Z, symbol A)'
    """
    ts = table.column("ts")[row].as_py()
    when = format_ts(int(ts)) if isinstance(ts, int) else str(ts)
    return f"row {row} (ts {when}, symbol {table.column('symbol')[row].as_py()})"


def check_metrics(metrics: dict[str, Any], where: str) -> None:
    """Raise :class:`ReportError` unless every metric is a number or null (``where``
    names the file).

    >>> check_metrics({"sharpe": 1.2, "calmar": None}, "m.json")
    >>> check_metrics({"sharpe": "high"}, "m.json")
    Traceback (most recent call last):
    ...
    qmtl.report.load.ReportError: m.json: the metric sharpe is 'high' (a str), not a number or null
    """
    for name, value in metrics.items():
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ReportError(f"{where}: the metric {name} is {value!r} (a "
                              f"{type(value).__name__}), not a number or null")


def rows_of(table: pa.Table, where: str) -> Rows:
    """The :class:`Rows` of a ``bars.parquet`` table (``where`` names it in errors).

    >>> t = pa.table({"ts": [1], "symbol": ["A"], "weight": [1.0], "return": [0.0],
    ...               "equity": [1.0]})
    >>> rows_of(t, "x").symbols
    ['A']
    >>> rows_of(t.drop_columns(["equity"]), "x/bars.parquet")
    Traceback (most recent call last):
    ...
    qmtl.report.load.ReportError: x/bars.parquet lacks the column equity (it has ts, ...)
    """
    for name in REQUIRED:
        if name not in table.column_names:
            raise ReportError(f"{where} lacks the column {name} "
                              f"(it has {', '.join(table.column_names)})")
    for name in REQUIRED:
        column = table.column(name)
        if column.null_count:
            row = int(np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False))[0])
            raise ReportError(f"{where}: the column {name} is empty (null) in "
                              f"{column.null_count} rows, first at {_row(table, row)}")
    symbol = table.column("symbol").combine_chunks()
    if not pa.types.is_dictionary(symbol.type):
        symbol = symbol.dictionary_encode()
    ts = table.column("ts").to_numpy().astype(np.int64, copy=False)
    code = symbol.indices.to_numpy(zero_copy_only=False).astype(np.int64)

    def col(name: str) -> np.ndarray:
        return table.column(name).to_numpy().astype(np.float64, copy=False)

    close = col("close") if "close" in table.column_names else None
    weight, contrib, equity = col("weight"), col("return"), col("equity")
    for name, values in (("weight", weight), ("return", contrib), ("equity", equity)):
        bad = ~np.isfinite(values)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ReportError(
                f"{where}: the column {name} holds {values[row]} at {_row(table, row)} "
                f"({int(bad.sum())} rows are NaN or infinite); a run's weights, returns "
                "and equity must be finite numbers")
    if len(ts) > 1 and not (ts[1:] >= ts[:-1]).all():  # rows by time then symbol
        order = np.lexsort((code, ts))
        ts, code, weight, contrib, equity = (a[order] for a in (ts, code, weight, contrib,
                                                                 equity))
        close = close[order] if close is not None else None
    return Rows(ts, code, [str(s) for s in symbol.dictionary.to_pylist()], weight, contrib,
                equity, close)


def load_run(path: str | Path) -> Run:
    """Read the run folder ``path`` (see the module docstring); a folder that is not one
    raises :class:`ReportError` naming what is missing.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise ReportError(f"{folder} is not a run folder: no such folder")
    doc_path, bars_path = folder / "metrics.json", folder / "bars.parquet"
    for needed in (doc_path, bars_path):
        if not needed.is_file():
            raise ReportError(f"{folder} is not a run folder: it has no {needed.name} "
                              "(qmtl run --mode backtest writes one)")
    try:
        doc = json.loads(doc_path.read_text())
    except json.JSONDecodeError as exc:
        raise ReportError(f"{doc_path} is not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("metrics"), dict):
        raise ReportError(f"{doc_path} has no metrics: it is not a qmtl run's metrics.json")
    check_metrics(doc["metrics"], str(doc_path))
    try:
        table = pq.read_table(bars_path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise ReportError(f"{bars_path} cannot be read: {exc}") from None
    rows = rows_of(table, str(bars_path))
    if not len(rows.ts):
        raise ReportError(f"{bars_path} has no rows")
    return Run(folder.resolve().name, doc, rows, folder)


def from_result(result: BacktestResult) -> Run:
    """The :class:`Run` of a backtest's result in memory (what its folder would hold).

    >>> import pyarrow as pa
    >>> from qmtl.result import BacktestResult
    >>> t = pa.table({"ts": [1], "symbol": ["A"], "weight": [1.0], "return": [0.0],
    ...               "equity": [1.0]})
    >>> from_result(BacktestResult("S", {}, ["A"], "1d", t, {"sharpe": 1.0})).name
    'S'
    """
    rows = rows_of(result.bars, result.strategy)
    if len(result.ts) == len(rows.timeline):
        # the engine's own series: exact where a folder's rows can only rebuild them (a
        # symbol without a bar while the gross cap rescales the others)
        rows.__dict__.update(turnover=result.turnover, gross=result.gross)
    return Run(result.strategy, result.metrics_doc(), rows)
