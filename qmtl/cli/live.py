"""The live side of ``qmtl run --mode live`` (see :mod:`qmtl.live`): logging, the order
lines and the summary.

>>> OrderPrinter(per_second=5, write=lambda line: None).per_second
5
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

from qmtl.cli.common import console, err_console, metrics_table
from qmtl.core.times import format_ts
from qmtl.live import LiveOptions, run_live
from qmtl.live.options import count_line
from qmtl.live.report import account_line, gate_line
from qmtl.strategy import Strategy


def setup_logging(debug: bool = False) -> None:
    """Log lines of the live run to stderr (the gate's reasons, dead letters, outages).

    >>> setup_logging(); logging.getLogger("qmtl").level == logging.INFO
    True
    """
    logger = logging.getLogger("qmtl")
    ours = [h for h in logger.handlers if getattr(h, "_qmtl", False)]
    if ours:  # a second run in the same process: stderr may have been replaced since
        for h in ours:
            if isinstance(h, logging.StreamHandler):
                h.stream = sys.stderr  # not setStream: it flushes the old one, maybe closed
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))
        handler._qmtl = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    for noisy in ("httpx", "httpcore", "uvicorn.error", "uvicorn.access", "qmtl.kafka"):
        logging.getLogger(noisy).setLevel(logging.WARNING if not debug else logging.INFO)


class OrderPrinter:
    """One console line per order and per fill, up to ``per_second`` lines a second; past
    that, one line a second says how many more there were (they are all in the order store).

    >>> p = OrderPrinter(per_second=1, write=lambda line: None)
    >>> p.budget
    1
    """

    def __init__(self, per_second: int = 20, write: Any = None) -> None:
        self.per_second = per_second
        self.budget = per_second
        self.skipped = [0, 0]
        self._clock = time.monotonic
        self._window = self._clock()
        self._write = write or (lambda line: console.print(line, highlight=False))

    def _tick(self) -> None:
        now = self._clock()
        if now - self._window >= 1.0:
            if any(self.skipped):
                self._write(
                    f"[dim]... {self.skipped[0]:,} more orders and {self.skipped[1]:,} "
                    "more fills in the last second (all in the order store)[/]"
                )
            self._window, self.budget, self.skipped = now, self.per_second, [0, 0]

    def __call__(self, strategy: str, intents: list[Any], fills: list[Any]) -> None:
        self._tick()
        for o in intents:
            if self.budget <= 0:
                self.skipped[0] += 1
                continue
            self.budget -= 1
            self._write(
                f"[cyan]order[/] {strategy} {o.symbol} @ {format_ts(o.ts)}: target "
                f"{o.target_qty:,.2f} ({o.target_weight:+.1%}) · {o.reason}"
            )
        for f in fills:
            if self.budget <= 0:
                self.skipped[1] += 1
                continue
            self.budget -= 1
            self._write(
                f"[green]fill[/]  {strategy} {f.symbol} @ {format_ts(f.ts)}: "
                f"{f.qty:+,.2f} at {f.price:,.4f} (fee {f.fee:,.2f})"
            )


def run_live_command(strategy: Strategy, options: LiveOptions, debug: bool) -> None:
    """``qmtl run --mode live`` of ``strategy`` (from a file, ``--alpha`` or ``--spec``):
    start, print orders as they come, then a summary."""
    setup_logging(debug)

    def started(info: dict[str, Any]) -> None:
        what = "resuming" if info["resuming"] else "starting"
        err_console.print(
            f"[bold]{what}[/] {info['mode']} run {info['run_id']} of {strategy.name} · world "
            f"{info['world']} at {info['url']} · bars from {info['source']} · warm-up "
            f"{info['warmup_bars']} bars",
            highlight=False,
        )
        if info.get("metrics_port") is not None:
            err_console.print(
                f"metrics on http://{options.metrics_host}:{info['metrics_port']}/metrics",
                highlight=False,
            )

    result = run_live(strategy, options, on_order=OrderPrinter(), on_started=started)
    console.print(
        metrics_table(f"{result.strategy} · {result.mode} · world {result.world}", result.metrics)
    )
    st = result.stats
    rate = f" at {st.rate:,.0f} bars/s" if st.rate else ""
    console.print(
        f"{st.live_bars} live bars{rate} ({st.warmup_bars} warm-up, {st.overlap} already in "
        f"history, {st.gap_filled} gap-filled, {st.dead_letters} dead letters) · "
        f"{count_line('orders', result.new_orders, len(result.orders))} · "
        f"{count_line('fills', result.new_fills, len(result.fills))} · positions "
        f"{result.positions or 'none'}",
        highlight=False,
    )
    console.print(account_line(result.metrics.get("total_return"), result.paper), highlight=False)
    console.print(
        gate_line(
            result.gate_bars, result.held_bars, result.held_by_cause, result.bars_before_active
        ),
        highlight=False,
    )
    if result.out is not None:
        console.print(
            f"wrote {result.out}/bars.parquet and {result.out}/metrics.json", highlight=False
        )
