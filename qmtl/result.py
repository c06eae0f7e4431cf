"""What a backtest returns: :class:`BacktestResult`, and how it is written to a run folder.

``metrics.json`` records the run's outcome (metrics, first and last bar) beside everything
that produced it: the strategy's parameters, every run setting (``settings``: costs, period,
batch size, workers, annualization, bad-bar handling, warm-up) and what data it read
(``data``: the dataset fingerprint and per-symbol coverage). Times are int64 nanoseconds
since the epoch, each with an ISO-8601 UTC twin named ``<key>_utc``.

>>> import numpy as np, pyarrow as pa
>>> r = BacktestResult("S", {"n": 3}, ["A"], "1d", pa.table({"ts": [1]}), {"sharpe": 1.0},
...                    settings={"cost_bps": 5.0, "start": 1704240000000000000},
...                    series={"ts": [np.array([1704240000000000000])]})
>>> doc = r.metrics_doc()
>>> doc["settings"]["start_utc"], doc["start_utc"]
('2024-01-03T00:00:00Z', '2024-01-03T00:00:00Z')
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import qmtl.report  # its names (and plotly) load on first use
from qmtl import __version__
from qmtl.core.errors import QmtlError
from qmtl.core.times import format_ts

if TYPE_CHECKING:
    import pandas
    import plotly.graph_objects as go

SERIES = ("ts", "returns", "equity", "turnover", "gross")
"""The per-bar portfolio series of a :class:`BacktestResult`, in column order."""

TIME_KEYS = frozenset({"start", "end", "as_of", "first", "last", "from"})
"""Keys of ``metrics.json`` whose int values are times (ns); each gets a ``<key>_utc`` twin."""

JsonValue = None | bool | int | float | str | list["JsonValue"] | dict[str, "JsonValue"]
"""What ``metrics.json`` holds."""

ParamValue = bool | int | float | str
"""A strategy parameter's value."""


class MissingExtraError(QmtlError, ImportError):
    """An optional feature needs a package that is not installed: the message names the pip
    extra that brings it.

    >>> str(MissingExtraError.for_package("pandas", "pandas", "to_pandas()"))
    "to_pandas() needs pandas, which is not installed: pip install 'qmtl[pandas]'"
    """

    @classmethod
    def for_package(cls, package: str, extra: str, feature: str) -> MissingExtraError:
        """The error for ``feature`` needing ``package`` (installed by the ``extra``)."""
        return cls(
            f"{feature} needs {package}, which is not installed: pip install 'qmtl[{extra}]'"
        )


def with_utc(value: JsonValue) -> JsonValue:
    """A copy of a JSON document where every int time under a key of :data:`TIME_KEYS` has
    an ISO-8601 UTC twin right after it.

    >>> with_utc({"data": [{"first": 0, "rows": 3, "end": None}]})
    {'data': [{'first': 0, 'first_utc': '1970-01-01T00:00:00Z', 'rows': 3, 'end': None}]}
    """
    if isinstance(value, list):
        return [with_utc(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, JsonValue] = {}
    for key, item in value.items():
        out[key] = with_utc(item)
        if key in TIME_KEYS and isinstance(item, int) and not isinstance(item, bool):
            out[f"{key}_utc"] = format_ts(item)
    return out


@dataclass
class BacktestResult:
    """What a backtest produced: per-bar portfolio series, per-symbol rows and metrics.

    The series (``ts``, ``returns``, ``equity``, ``turnover``, ``gross``) are kept as the
    replay's batches and joined into one array the first time each is read, so a caller
    that wants only the metrics never pays for them.

    >>> import numpy as np, pyarrow as pa
    >>> r = BacktestResult("S", {}, ["A"], "1d", pa.table({"ts": [1, 2]}), {"sharpe": 1.0},
    ...                    series={"ts": [np.array([1]), np.array([2])],
    ...                            "returns": [np.array([0.0]), np.array([0.5])]})
    >>> r.returns.tolist(), r.ts.tolist()
    ([0.0, 0.5], [1, 2])
    """

    strategy: str
    params: dict[str, ParamValue]
    symbols: list[str]
    interval: str
    bars: pa.Table
    metrics: dict[str, float]
    history: list[tuple[int, int, dict[str, float], np.ndarray]] = field(default_factory=list)
    """``(n_bars, as_of, metrics, returns since previous)`` at each metrics snapshot."""
    data: dict[str, JsonValue] = field(default_factory=dict)
    """What the run saw: ``fingerprint``, ``as_of`` (when it read the data, ns), the
    ``requested`` range, per symbol first/last bar, rows and a content hash (see
    :mod:`qmtl.core.fingerprint`), and what was ``fetched`` from QuestDB or an origin for it."""
    dropped_bars: int = 0
    settings: dict[str, JsonValue] = field(default_factory=dict)
    """Every setting of the run besides the parameters: ``cost_bps``, ``max_gross``,
    ``max_net`` (None: no cap), ``context`` (symbols read, not traded),
    ``periods_per_year``, the requested ``start``/``end``, ``batch_size``, ``workers``,
    ``on_bad_bars``, ``metrics_every`` and ``warmup`` (bars of look-back)."""
    series: dict[str, np.ndarray | list[np.ndarray]] = field(default_factory=dict, repr=False)
    """Each series as one array, or as the list of its batches' arrays until first read."""

    def _series(self, name: str) -> np.ndarray:
        value = self.series.get(name)
        if value is None:
            value = np.empty(0, dtype=np.int64 if name == "ts" else np.float64)
        elif isinstance(value, list):
            # a copy even of one batch: the batches' arrays also back ``bars``
            value = value[0].copy() if len(value) == 1 else np.concatenate(value)
        self.series[name] = value
        return value

    @property
    def ts(self) -> np.ndarray:
        """Bar close times (ns since the epoch, UTC), one per portfolio row."""
        return self._series("ts")

    @property
    def returns(self) -> np.ndarray:
        """The portfolio's return over each bar, net of costs."""
        return self._series("returns")

    @property
    def equity(self) -> np.ndarray:
        """Equity after each bar, compounding from 1.0."""
        return self._series("equity")

    @property
    def turnover(self) -> np.ndarray:
        """Sum of absolute weight changes at each bar."""
        return self._series("turnover")

    @property
    def gross(self) -> np.ndarray:
        """Gross exposure (sum of absolute weights) held after each bar."""
        return self._series("gross")

    def to_pandas(self) -> pandas.DataFrame:
        """The portfolio series as a pandas DataFrame indexed by UTC time.

        pandas is optional (``pip install 'qmtl[pandas]'``); without it this raises
        :class:`MissingExtraError`, which says so.

        >>> import pyarrow as pa
        >>> r = BacktestResult("S", {}, ["A"], "1d", pa.table({"ts": [1]}), {})
        >>> list(r.to_pandas().columns)
        ['return', 'equity', 'turnover', 'gross']
        """
        try:
            import pandas as pd  # the optional extra
        except ImportError:
            raise MissingExtraError.for_package("pandas", "pandas", "to_pandas()") from None
        index = pd.to_datetime(self.ts, unit="ns", utc=True)
        return pd.DataFrame(
            {
                "return": self.returns,
                "equity": self.equity,
                "turnover": self.turnover,
                "gross": self.gross,
            },
            index=index,
        )

    @property
    def trades(self) -> pa.Table:
        """The round trips: one row per stretch a symbol's weight kept one sign, as a
        pyarrow Table with ``symbol``, ``side``, ``entry``, ``exit`` (null while open),
        ``bars`` (held), ``return`` (the price move in the trade's favour), ``pnl`` (what it
        added, costs included, in units of the starting capital) and ``open``; see
        :mod:`qmtl.report.trades` (``qmtl.report.from_result(res).position_changes()`` lists
        every weight change instead).

        >>> import pyarrow as pa
        >>> t = pa.table({"ts": [1, 2], "symbol": ["A", "A"], "weight": [0.0, 1.0],
        ...               "return": [0.0, 0.0], "equity": [1.0, 1.0]})
        >>> BacktestResult("S", {}, ["A"], "1d", t, {}).trades.column("side").to_pylist()
        ['long']
        """
        return qmtl.report.from_result(self).trades()

    def plot(self, benchmark: str | None = None) -> go.Figure:
        """Equity (against buying and holding the universe, or ``benchmark``) above its
        drawdown, as a plotly Figure (shown inline in a notebook).

        >>> import pyarrow as pa
        >>> t = pa.table({"ts": [1, 2], "symbol": ["A", "A"], "weight": [1.0, 1.0],
        ...               "return": [0.0, 0.1], "equity": [1.0, 1.1], "close": [1.0, 1.1]})
        >>> len(BacktestResult("S", {}, ["A"], "1d", t, {}).plot().data)
        3
        """
        return qmtl.report.plot(qmtl.report.from_result(self), benchmark)

    def report(self, path: str | Path, benchmark: str | None = None) -> Path:
        """Write the tear sheet (one HTML file that works offline, see ``docs/reports.md``)
        to ``path``; return it.

        >>> import tempfile, pyarrow as pa
        >>> t = pa.table({"ts": [1, 2], "symbol": ["A", "A"], "weight": [1.0, 1.0],
        ...               "return": [0.0, 0.1], "equity": [1.0, 1.1], "close": [1.0, 1.1]})
        >>> r = BacktestResult("S", {}, ["A"], "1d", t, {"sharpe": 1.0})
        >>> r.report(Path(tempfile.mkdtemp()) / "r.html").stat().st_size > 1_000_000
        True
        """
        return qmtl.report.write_report(qmtl.report.from_result(self), path, benchmark)

    def metrics_doc(self) -> dict[str, JsonValue]:
        """The content of ``metrics.json`` (see the module docstring)."""
        doc: dict[str, JsonValue] = {
            "strategy": self.strategy,
            "params": dict(self.params),
            "symbols": list(self.symbols),
            "interval": self.interval,
            "settings": dict(self.settings),
            "start": int(self.ts[0]) if len(self.ts) else None,
            "end": int(self.ts[-1]) if len(self.ts) else None,
            "metrics": {k: (v if math.isfinite(v) else None) for k, v in self.metrics.items()},
            "data": dict(self.data),
            "dropped_bars": self.dropped_bars,
            "qmtl_version": __version__,
        }
        out = with_utc(doc)
        assert isinstance(out, dict)
        return out

    def write(self, out: str | Path) -> Path:
        """Write ``bars.parquet`` (ts, symbol, weight, return, equity, close) and ``metrics.json``
        into the folder ``out`` (made if missing); each file appears whole or not at all.

        >>> import tempfile, pyarrow as pa
        >>> r = BacktestResult("S", {}, ["A"], "1d", pa.table({"ts": [1]}), {"sharpe": 1.0})
        >>> sorted(p.name for p in r.write(tempfile.mkdtemp()).iterdir())
        ['bars.parquet', 'metrics.json']
        """
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.metrics_doc(), indent=2) + "\n"  # fails before any write
        tmp = folder / ".bars.parquet.tmp"
        pq.write_table(self.bars, tmp)
        tmp.replace(folder / "bars.parquet")
        tmp = folder / ".metrics.json.tmp"
        tmp.write_text(text)
        tmp.replace(folder / "metrics.json")
        return folder


def json_settings(settings: Mapping[str, object]) -> dict[str, JsonValue]:
    """``settings`` with sequences as lists, mappings as dicts (of the same) and numbers as
    plain floats and ints.

    >>> json_settings({"batch_size": (7, 3), "cost_bps": np.float64(2), "x": {"a": (1,)}})
    {'batch_size': [7, 3], 'cost_bps': 2.0, 'x': {'a': [1]}}
    """
    out: dict[str, JsonValue] = {}
    for key, value in settings.items():
        if isinstance(value, Mapping):
            out[key] = json_settings(value)
        elif isinstance(value, (tuple, list)):
            out[key] = [json_scalar(v) for v in value]
        else:
            out[key] = json_scalar(value)
    return out


def json_scalar(value: object) -> JsonValue:
    """A JSON scalar of ``value`` (numpy numbers become Python ones; others stay as text).

    >>> json_scalar(np.int64(3)), json_scalar(True), json_scalar(None), json_scalar(Path("a"))
    (3, True, None, 'a')
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    return str(value)
