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

_ROW = np.dtype(
    [("ts", "<i8"), ("symbol", "<i4"), ("weight", "<f8"), ("return", "<f8"), ("equity", "<f8")]
)
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
                rows["weight"], rows["return"], rows["equity"] = (
                    r["weight"],
                    r["return"],
                    r["equity"],
                )
                series = np.empty(len(batch), _SERIES)
                series["ts"], series["return"], series["equity"] = (
                    batch.ts,
                    batch.returns,
                    batch.equity,
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
            if (
                self.out is not None
                and self._dirty
                and (time.monotonic() - self._written > self.write_every)
            ):
                self._write()

    def _update(self, out: StrategyOutput) -> MetricsUpdate:
        returns = (
            []
            if out.returns_since is None or out.returns_ts is None
            else timed_returns(out.returns_ts, out.returns_since)
        )
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
        return pa.table(
            {
                "ts": pa.array(rows["ts"], pa.int64()),
                "symbol": names,
                "weight": rows["weight"],
                "return": rows["return"],
                "equity": rows["equity"],
            }
        )

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


class GateLedger:
    """What the order gate did to a run's bars, for its summary: the bars whose orders it
    held, by cause (a bar counts once per cause, whichever of its symbols were held), the
    bars that ran before the world first activated the strategy, and each symbol's last
    close (to value the paper account). Fed by the order step (``on_verdict``), from every
    worker, so it locks; it does no I/O.

    >>> from dataflows.gate import Verdict
    >>> g = GateLedger()
    >>> g.on_verdict("s", Verdict("hold", cause="no_activation"), "A", 1, 10.0)
    >>> g.on_verdict("s", Verdict("hold", cause="no_activation"), "B", 1, 20.0)
    >>> g.on_verdict("s", Verdict("trade", weight=1.0), "A", 2, 11.0)
    >>> g.on_verdict("s", Verdict("hold", cause="frozen"), "A", 3, 12.0)
    >>> g.bars, g.held(), g.by_cause(), g.before_active(), g.marks
    (3, 2, {'frozen': 1, 'no_activation': 1}, 1, {'A': 12.0, 'B': 20.0})
    """

    def __init__(self) -> None:
        self._bars: set[int] = set()
        self._held: dict[str, set[int]] = {}
        self.first_active: int | None = None
        self.marks: dict[str, float] = {}
        self._lock = threading.Lock()

    def on_verdict(
        self,
        _strategy: str,
        verdict: Any,
        symbol: str | None = None,
        ts: int | None = None,
        close: float | None = None,
    ) -> None:
        """Note one of the gate's decisions, for ``symbol``'s bar at ``ts``."""
        if ts is None:
            return
        with self._lock:
            self._bars.add(ts)
            if symbol is not None and close is not None:
                self.marks[symbol] = float(close)
            if verdict.kind == "hold":
                self._held.setdefault(verdict.cause or "other", set()).add(ts)
            elif self.first_active is None or ts < self.first_active:
                self.first_active = ts

    @property
    def bars(self) -> int:
        """Bars the gate decided."""
        with self._lock:
            return len(self._bars)

    def held(self) -> int:
        """Bars with orders held (for any cause)."""
        with self._lock:
            return len(set().union(*self._held.values())) if self._held else 0

    def by_cause(self) -> dict[str, int]:
        """Held bars per cause."""
        with self._lock:
            return {k: len(v) for k, v in sorted(self._held.items())}

    def before_active(self) -> int:
        """Bars that ran before the world first activated the strategy (all of them when it
        never did)."""
        with self._lock:
            if self.first_active is None:
                return len(self._bars)
            return sum(1 for t in self._bars if t < self.first_active)


def paper_account(
    fills: list[Any], capital: float, marks: dict[str, float], slippage_bps: float = 0.0
) -> dict[str, float]:
    """The paper account from its fills: cash starts at ``capital``, each fill pays
    ``qty x price + fee``; positions are valued at ``marks`` (each symbol's last close).
    ``return`` is the account's, ``fees`` what the fills paid, ``slippage`` what fills at
    ``slippage_bps`` against the trade cost against the bar's open.

    >>> from qmtl.core.contracts import Fill
    >>> fills = [Fill(order_id="a", symbol="A", ts=1, qty=10.0, price=101.0, fee=1.0),
    ...          Fill(order_id="b", symbol="A", ts=2, qty=-5.0, price=99.0, fee=1.0)]
    >>> acc = paper_account(fills, 1000.0, {"A": 100.0}, slippage_bps=100.0)
    >>> round(acc["return"], 6), acc["fees"], round(acc["slippage"], 6), acc["fills"]
    (-0.017, 2.0, 15.0, 2.0)
    """
    s = slippage_bps / 1e4
    cash, fees, slip = capital, 0.0, 0.0
    pos: dict[str, float] = {}
    for f in fills:
        cash -= f.qty * f.price + f.fee
        fees += f.fee
        pos[f.symbol] = pos.get(f.symbol, 0.0) + f.qty
        # the open the fill was priced from: price / (1 + s) for a buy, / (1 - s) for a sell
        ref = f.price / (1.0 + s) if f.qty > 0 else f.price / (1.0 - s) if s < 1 else f.price
        slip += abs(f.qty) * abs(f.price - ref)
    value = cash + sum(q * marks.get(sym, 0.0) for sym, q in pos.items() if q)
    return {
        "return": value / capital - 1.0,
        "fees": fees,
        "slippage": slip,
        "fills": float(len(fills)),
    }


CAUSE_WORDS = {
    "no_activation": "not active yet",
    "frozen": "world frozen",
    "connecting": "world not reached yet",
    "lost": "world unreachable",
    "stale": "activation stale",
    "world_gone": "world deleted",
    "world_restarted": "world made again",
    "unlisted": "no longer listed",
    "stage": "stage backtest",
}
"""How the summary names each cause of held orders (:data:`dataflows.gate.HOLD_CAUSES`)."""


def account_line(model_return: float | None, paper: dict[str, float] | None) -> str:
    """The summary's line of returns: the model's (the book's weights, as a backtest) and the
    paper account's (its fills, fees and slippage, positions at the last close).

    >>> account_line(0.121, {"return": 0.142, "fees": 12.3, "slippage": 4.1, "fills": 63})
    'model return +12.10% · paper account +14.20% (63 fills, fees 12.30, slippage 4.10)'
    >>> account_line(0.121, None)
    'model return +12.10%'
    """
    model = "n/a" if model_return is None else f"{model_return:+.2%}"
    line = f"model return {model}"
    if paper is not None:
        line += (
            f" · paper account {paper['return']:+.2%} ({int(paper['fills'])} fills, fees "
            f"{paper['fees']:,.2f}, slippage {paper['slippage']:,.2f})"
        )
    return line


def gate_line(bars: int, held: int, by_cause: dict[str, int], before_active: int) -> str:
    """The summary's line on the gate: bars whose orders were held, by cause, and how many
    bars ran before the world first activated the strategy (a replay faster than the world
    answers runs bars before its activation: see docs/live.md).

    >>> gate_line(178, 40, {"no_activation": 38, "lost": 2}, 38).split(" · ")[1]
    'first active after 38 bars'
    >>> gate_line(178, 40, {"no_activation": 38, "lost": 2}, 38).split(" · ")[0][30:]
    '(38 not active yet, 2 world unreachable)'
    >>> gate_line(10, 10, {"no_activation": 10}, 10)
    'orders held on 10 of 10 bars (10 not active yet) · never active'
    """
    causes = ", ".join(f"{n} {CAUSE_WORDS.get(k, k)}" for k, n in by_cause.items())
    line = f"orders held on {held} of {bars} bars" + (f" ({causes})" if causes else "")
    if before_active >= bars and bars and held >= bars:
        return line + " · never active"
    return line + f" · first active after {before_active} bars"
