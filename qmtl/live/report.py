"""The run folder of a live run and its metrics for the world (:class:`RunReport`).

``--out`` holds what a backtest writes (``bars.parquet``, ``metrics.json``) plus the
append-only logs they are made from (``.rows.bin``, ``.series.bin``), which a resumed run
reads back.

>>> import tempfile
>>> from pathlib import Path
>>> head = {"world": "w", "strategy": "s", "run_id": "r", "mode": "paper"}
>>> report = RunReport(head, ["A"], Path(tempfile.mkdtemp()), None, resume=False)
>>> report.finish({}); report.table().num_rows, sorted(p.name for p in report.out.iterdir())
(0, ['.rows.bin', '.series.bin', 'bars.parquet', 'metrics.json'])
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from dataflows.compiler import StrategyOutput
from dataflows.metrics import finite
from dataflows.recovery import RecordLog
from qmtl.core.contracts import MetricsUpdate, timed_returns
from qmtl.core.errors import writing

_ROW = np.dtype([("ts", "<i8"), ("symbol", "<i4"), ("weight", "<f8"), ("return", "<f8"),
                 ("equity", "<f8")])
_SERIES = np.dtype([("ts", "<i8"), ("return", "<f8"), ("equity", "<f8")])


class RunReport:
    """What a live run reports, kept consistent with its recovery snapshots: per-symbol rows
    and the portfolio series go to append-only logs in ``--out`` (and from them to
    ``bars.parquet``, as a backtest writes it, every ``write_every`` seconds and at the end),
    metrics to ``metrics.json``, and each metrics snapshot becomes a MetricsUpdate queued in
    the run's store for the world. Everything is written before the step returns, so a
    snapshot never covers output that is not written (``metrics.json`` lags, but a resumed
    run takes its metrics from the last update queued in the store); rows at or before the
    last one logged are not written again (a restarted flow re-emits what followed its
    snapshot).

    >>> head = {"world": "w", "strategy": "s", "run_id": "r", "mode": "paper"}
    >>> RunReport(head, ["B", "A", "B"], None, None, resume=False).symbols
    ['A', 'B']
    """

    def __init__(
        self,
        head: dict[str, Any],
        symbols: list[str],
        out: Path | None,
        queue: Callable[[MetricsUpdate], None] | None,
        resume: bool,
        write_every: float = 1.0,
        last_update: MetricsUpdate | None = None,
    ) -> None:
        self.head = head
        self.symbols = sorted(set(symbols))
        self.out = out
        self.queue = queue
        self.write_every = write_every
        self.metrics: dict[str, float] = {}
        self.n_bars = 0
        self.updates: list[MetricsUpdate] = []
        self.extra: dict[str, Any] = {}
        self._written = time.monotonic()
        self._dirty = False
        self._lock = threading.Lock()
        if out is not None:
            out.mkdir(parents=True, exist_ok=True)
            doc = out / "metrics.json"
            if resume and doc.is_file():
                prior = json.loads(doc.read_text())
                self.metrics = {
                    k: (math.nan if v is None else v) for k, v in prior.get("metrics", {}).items()
                }
                self.n_bars = int(prior.get("n_bars", 0))
        if resume and last_update is not None and last_update.n_bars > self.n_bars:
            # metrics.json is rewritten every ``write_every`` seconds, but each update is
            # queued in the store before the step returns: a run killed in between resumes
            # with the metrics its snapshot covers (in the update's wire form: a NaN is 0.0)
            self.metrics = dict(last_update.metrics)
            self.n_bars = last_update.n_bars
        self.rows = RecordLog(out / ".rows.bin" if out else None, _ROW, resume)
        self.series = RecordLog(out / ".series.bin" if out else None, _SERIES, resume)
        done = self.series.all()
        self.last_ts: int | None = int(done["ts"][-1]) if len(done) else None
        if len(done) > self.n_bars:
            self.n_bars = len(done)

    def on_output(self, out: StrategyOutput) -> None:
        """Take one engine output (on whichever worker produced it)."""
        with self._lock:
            batch = out.batch
            if batch is not None and self.last_ts is not None:
                batch = batch.after(self.last_ts)
            if batch is not None:
                r = batch.symbol_rows
                rows = np.empty(len(r["ts"]), _ROW)
                rows["ts"], rows["symbol"] = r["ts"], r["symbol"]
                rows["weight"], rows["return"], rows["equity"] = r["weight"], r["return"], r[
                    "equity"
                ]
                series = np.empty(len(batch), _SERIES)
                series["ts"], series["return"], series["equity"] = (
                    batch.ts, batch.returns, batch.equity,
                )
                self.rows.append(rows)
                self.series.append(series)
                self.last_ts = int(batch.ts[-1])
                self._dirty = True
            if out.metrics is not None:
                self.metrics = dict(out.metrics)
                self.n_bars = out.n_bars
                self._dirty = True
                update = self._update(out)
                self.updates.append(update)
                if self.queue is not None:
                    self.queue(update)
            if self.out is not None and self._dirty and (
                time.monotonic() - self._written > self.write_every
            ):
                self._write()

    def _update(self, out: StrategyOutput) -> MetricsUpdate:
        returns = ([] if out.returns_since is None or out.returns_ts is None
                   else timed_returns(out.returns_ts, out.returns_since))
        return MetricsUpdate(
            world=self.head["world"],
            strategy_id=self.head["strategy"],
            run_id=self.head["run_id"],
            seq=out.seq,
            mode=self.head["mode"],
            as_of=out.as_of,
            n_bars=out.n_bars,
            metrics={k: finite(v) for k, v in out.metrics.items()} if out.metrics else {},
            returns=returns,
        )

    def table(self) -> pa.Table:
        """Every per-symbol row so far (ts, symbol, weight, return, equity)."""
        rows = self.rows.all()
        names = pa.DictionaryArray.from_arrays(
            pa.array(rows["symbol"], pa.int32()), pa.array(self.symbols)
        )
        return pa.table({
            "ts": pa.array(rows["ts"], pa.int64()),
            "symbol": names,
            "weight": rows["weight"],
            "return": rows["return"],
            "equity": rows["equity"],
        })

    def portfolio(self) -> np.ndarray:
        """The portfolio series so far (ts, return, equity)."""
        return self.series.all()

    def _write(self) -> None:
        assert self.out is not None
        table = self.table()
        tmp = self.out / ".bars.parquet.tmp"
        with writing(tmp):
            pq.write_table(table, tmp)
        tmp.replace(self.out / "bars.parquet")
        ts = table.column("ts")
        doc = {
            **self.head,
            "start": ts[0].as_py() if len(ts) else None,
            "end": ts[-1].as_py() if len(ts) else None,
            "n_bars": self.n_bars,
            "metrics": {k: (v if math.isfinite(v) else None) for k, v in self.metrics.items()},
            **self.extra,
        }
        tmp_doc = self.out / ".metrics.json.tmp"
        tmp_doc.write_text(json.dumps(doc, indent=2, default=str) + "\n")
        tmp_doc.replace(self.out / "metrics.json")
        self._written = time.monotonic()
        self._dirty = False

    def finish(self, extra: dict[str, Any]) -> None:
        """Write the final files."""
        with self._lock:
            self.extra = extra
            if self.out is not None:
                self._write()
            self.rows.close()
            self.series.close()

