"""What a sweep produced: one row per variant (its parameters and every metric), the
ranking, the overfitting statistics, and the files written from them.

>>> import numpy as np
>>> from dataflows.sweep_flow import SweepStats, VariantRun
>>> runs = [VariantRun(f"v{i}", np.arange(4), np.full(4, 0.01 * i), np.ones(4),
...                    {"sharpe": float(i)}) for i in range(3)]
>>> res = SweepResult(["S"] * 3, [{"n": i} for i in range(3)], runs, "sharpe", SweepStats())
>>> res.best(2).column("n").to_pylist()
[2, 1]
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from dataflows.metrics import MetricSet
from dataflows.sweep_flow import SweepStats, VariantRun
from qmtl.core.errors import QmtlError
from qmtl.core.fingerprint import dataset_fingerprint
from qmtl.core.times import format_ts
from qmtl.report.sweep import sweep_page
from qmtl.sweep.heatmap import LOWER_IS_BETTER, numeric_params
from qmtl.sweep.stats import Deflated, Pbo

if TYPE_CHECKING:
    import pandas


class SweepError(QmtlError, ValueError):
    """A sweep could not run or rank: bad options or too little data (the message says which).

    >>> period_metrics(np.zeros(0), 252.0)["n_bars"]
    0.0
    """


def period_metrics(returns: np.ndarray, periods_per_year: float) -> dict[str, float]:
    """The return-based metrics (those a period's returns alone decide) of ``returns``:
    every metric but ``turnover`` and ``exposure``.

    >>> m = period_metrics(np.array([0.1, -0.05]), 252.0)
    >>> round(m["total_return"], 6), "exposure" in m
    (0.045, False)
    """
    got = MetricSet(periods_per_year).update(np.asarray(returns, np.float64)).get()
    return {k: v for k, v in got.items() if k not in ("turnover", "exposure")}


def order(values: np.ndarray, metric: str) -> np.ndarray:
    """Indices of ``values`` best first by ``metric`` (NaN last; ties keep grid order).

    >>> order(np.array([1.0, np.nan, 3.0]), "sharpe").tolist()
    [2, 0, 1]
    >>> order(np.array([0.2, 0.1]), "max_drawdown").tolist()
    [1, 0]
    """
    v = np.asarray(values, dtype=np.float64)
    key = v if metric in LOWER_IS_BETTER else -v
    key = np.where(np.isnan(key), np.inf, key)
    return np.argsort(key, kind="stable")


@dataclass
class Fold:
    """One walk-forward fold: the variant chosen on the training bars and how it did after.

    >>> Fold(1, 0, 9, 10, 19, "v1", 1.2, 0.4).chosen
    'v1'
    """

    fold: int
    train_start: int
    train_end: int
    test_start: int
    test_end: int
    chosen: str
    train_value: float
    test_value: float


@dataclass
class WalkForward:
    """Anchored walk-forward: the folds and the stitched out-of-sample returns' metrics.

    >>> WalkForward([], np.zeros(0), {}).returns.size
    0
    """

    folds: list[Fold]
    returns: np.ndarray
    metrics: dict[str, float]


def walk_forward(
    keys: list[str], ts: np.ndarray, returns: np.ndarray, n_folds: int, metric: str,
    periods_per_year: float,
) -> WalkForward:
    """Cut the timeline into ``n_folds + 1`` equal pieces; fold ``i`` picks the best variant
    by ``metric`` on pieces ``0..i-1`` (anchored) and holds it over piece ``i``; the test
    pieces' returns are stitched into one out-of-sample series.

    >>> r = np.array([[0.01, -0.01], [0.01, -0.01], [-0.01, 0.01], [-0.01, 0.01]])
    >>> wf = walk_forward(["a", "b"], np.arange(4), r, 1, "total_return", 252.0)
    >>> [f.chosen for f in wf.folds], wf.returns.tolist()
    (['a'], [-0.01, -0.01])
    """
    if n_folds < 1:
        raise SweepError(f"--walk-forward must be >= 1, got {n_folds}")
    t = len(ts)
    edges = [t * i // (n_folds + 1) for i in range(n_folds + 2)]
    if min(b - a for a, b in itertools.pairwise(edges)) < 2:
        raise SweepError(f"--walk-forward {n_folds}: {t} bars are too few for "
                         f"{n_folds + 1} pieces of 2 bars or more")
    folds, stitched = [], []
    for i in range(1, n_folds + 1):
        train, test = slice(0, edges[i]), slice(edges[i], edges[i + 1])
        values = np.array([period_metrics(returns[train, j], periods_per_year)[metric]
                           for j in range(returns.shape[1])])
        best = int(order(values, metric)[0])
        out = returns[test, best]
        folds.append(Fold(i, int(ts[0]), int(ts[edges[i] - 1]), int(ts[edges[i]]),
                          int(ts[edges[i + 1] - 1]), keys[best], float(values[best]),
                          period_metrics(out, periods_per_year)[metric]))
        stitched.append(out)
    joined = np.concatenate(stitched)
    return WalkForward(folds, joined, period_metrics(joined, periods_per_year))


@dataclass
class SweepResult:
    """A sweep's variants and results (see the module docstring). ``table`` has one row per
    variant: ``variant`` (its key), ``strategy``, its parameters, every metric, and with a
    training cut ``train_*`` and ``test_*`` metrics; ``rank_by`` is the column ranked on.
    """

    strategies: list[str]
    params: list[dict[str, Any]]
    runs: list[VariantRun]
    metric: str
    stats: SweepStats
    train_end: int | None = None
    periods_per_year: float = 252.0
    deflated: Deflated | None = None
    pbo: Pbo | None = None
    walk_forward: WalkForward | None = None
    seconds: float = 0.0
    settings: dict[str, Any] = field(default_factory=dict)
    table: pa.Table = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.runs:
            raise SweepError("the sweep has no variants")
        metrics = list(self.runs[0].metrics)
        if self.metric not in metrics:
            raise SweepError(f"unknown metric {self.metric!r}: use one of {', '.join(metrics)}")
        cols: dict[str, Any] = {"variant": [r.key for r in self.runs],
                                "strategy": self.strategies}
        names: list[str] = []
        for p in self.params:
            names += [n for n in p if n not in names]
        for name in names:
            cols[name] = [p.get(name) for p in self.params]
        for m in metrics:
            cols[m] = [float(r.metrics.get(m, math.nan)) for r in self.runs]
        if self.train_end is not None:
            for part, pick in (("train", lambda ts: ts <= self.train_end),
                               ("test", lambda ts: ts > self.train_end)):
                rows = [period_metrics(r.returns[pick(r.ts)], self.periods_per_year)
                        for r in self.runs]
                for m in rows[0]:
                    cols[f"{part}_{m}"] = [row[m] for row in rows]
        self.table = pa.table(cols)

    @property
    def rank_by(self) -> str:
        """The column variants are ranked on: ``train_<metric>`` with a training cut.

        >>> import numpy as np
        >>> from dataflows.sweep_flow import VariantRun
        >>> run = VariantRun("v", np.arange(2), np.zeros(2), np.ones(2), {"sharpe": 0.0})
        >>> SweepResult(["S"], [{}], [run], "sharpe", SweepStats()).rank_by
        'sharpe'
        """
        return f"train_{self.metric}" if self.train_end is not None else self.metric

    def ranking(self) -> np.ndarray:
        """Row indices best first by :attr:`rank_by`."""
        return order(self.table.column(self.rank_by).to_numpy(zero_copy_only=False),
                     self.metric)

    def best(self, n: int = 10) -> pa.Table:
        """The ``n`` best rows by :attr:`rank_by`."""
        return self.table.take(self.ranking()[:n])

    def returns(self, variant: str | int) -> np.ndarray:
        """A variant's per-bar returns, by key or row.

        >>> import numpy as np
        >>> from dataflows.sweep_flow import VariantRun
        >>> run = VariantRun("v", np.arange(2), np.array([0.1, 0.2]), np.ones(2), {"sharpe": 1})
        >>> SweepResult(["S"], [{}], [run], "sharpe", SweepStats()).returns("v").tolist()
        [0.1, 0.2]
        """
        if isinstance(variant, int):
            return self.runs[variant].returns
        for r in self.runs:
            if r.key == variant:
                return r.returns
        raise KeyError(f"no variant {variant!r}")

    def matrix(self, part: str = "all") -> tuple[np.ndarray, np.ndarray]:
        """Bar times and a ``T x N`` matrix of returns (``part``: all, train or test); the
        variants must share one timeline."""
        ts = self.runs[0].ts
        if any(len(r.ts) != len(ts) or not np.array_equal(r.ts, ts) for r in self.runs):
            raise SweepError("the variants do not share one timeline (different symbols): "
                             "PBO and walk-forward need one")
        keep = np.ones(len(ts), bool)
        if part != "all" and self.train_end is not None:
            keep = ts <= self.train_end if part == "train" else ts > self.train_end
        return ts[keep], np.column_stack([r.returns[keep] for r in self.runs])

    def to_pandas(self) -> pandas.DataFrame:
        """The table as a pandas DataFrame (needs the ``pandas`` extra)."""
        return self.table.to_pandas()

    def summary(self) -> dict[str, Any]:
        """Counts, timing, dedup and overfitting statistics, as JSON-ready values."""
        doc: dict[str, Any] = {
            "variants": len(self.runs), "metric": self.metric, "rank_by": self.rank_by,
            "best": self.runs[int(self.ranking()[0])].key, "seconds": self.seconds,
            "flow_seconds": self.stats.flow_seconds,
            "nodes_evaluated": self.stats.nodes_evaluated,
            "nodes_per_variant_total": self.stats.nodes_per_variant,
            "dedup": self.stats.dedup, "shards": self.stats.shards,
            "train_end": format_ts(self.train_end) if self.train_end is not None else None,
            "data": {"fingerprint": dataset_fingerprint(self.stats.seen,
                                                        self.settings.get("interval", "")),
                     "symbols": self.stats.seen} if self.stats.seen else None,
            "settings": self.settings,
        }
        if self.deflated is not None:
            doc["deflated_sharpe"] = vars(self.deflated)
        if self.pbo is not None:
            doc["pbo"] = {"pbo": self.pbo.pbo, "splits": self.pbo.n_splits}
        if self.walk_forward is not None:
            doc["walk_forward"] = {"folds": [vars(f) for f in self.walk_forward.folds],
                                   "metrics": self.walk_forward.metrics}
        return _clean(doc)

    def write(self, out: str | Path, heatmap: bool = True) -> Path:
        """Write ``results.parquet``, ``results.csv``, ``summary.json`` and (when the grid
        has two or more numeric parameters) ``heatmap.html`` to the folder ``out``."""
        folder = Path(out)
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(self.table, folder / "results.parquet")
        pcsv.write_csv(self.table, folder / "results.csv")
        (folder / "summary.json").write_text(json.dumps(self.summary(), indent=2,
                                                        allow_nan=False, default=str))
        if heatmap and len(numeric_params(self)) >= 2:
            (folder / "heatmap.html").write_text(sweep_page(self), encoding="utf-8")
        return folder


def _clean(value: Any) -> Any:
    """``value`` with numpy values as Python ones and NaN/inf as None (strict JSON).

    >>> _clean({"a": [np.float64("nan"), np.int64(2)]})
    {'a': [None, 2]}
    """
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_clean(v) for v in value]
    if isinstance(value, (np.floating, np.integer, np.bool_)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
