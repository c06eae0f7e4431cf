"""What a live run is told (:class:`LiveOptions`) and what it reports (:class:`LiveResult`).

>>> LiveOptions(paper=True).speed
'10/s'
>>> count_line("orders", new=0, total=15)
'0 new orders (15 already recorded)'
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from connectors.live.source import LiveStats
from qmtl.core.contracts import Fill, MetricsUpdate, OrderIntent
from qmtl.core.errors import QmtlError


class LiveError(QmtlError, RuntimeError):
    """A live run cannot start or continue (the text says why and what to do).

    >>> str(LiveError("--max-bars must be >= 1, got 0"))
    '--max-bars must be >= 1, got 0'
    """


@dataclass
class LiveOptions:
    """Everything a live run can be told (the CLI's options, with the same defaults).

    >>> o = LiveOptions(brokers="127.0.0.1:9092", topic="bars")
    >>> o.world, o.paper, o.recovery_dir
    ('local', False, None)
    """

    brokers: str | None = None
    topic: str = "bars"
    group: str | None = None
    world: str = "local"
    url: str | None = None
    token: str | None = None
    paper: bool = False
    data: Any = None
    symbols: list[str] | None = None
    start: str | int | None = None
    end: str | int | None = None
    cost_bps: float | None = None
    strategy_id: str | None = None
    warmup: int | None = None
    speed: str = "10/s"
    max_bars: int | None = None
    stop_after_idle: float | None = None
    recovery_dir: Path | None = None
    snapshot_interval: float = 1.0
    out: Path | None = None
    orders_store: str | None = None
    orders_topic: str = "orders"
    fills_topic: str = "fills"
    targets_topic: str | None = None  # the world's book reads targets here (qmtl.book_run)
    shadow: bool = False  # orders held and updates in mode shadow while the world trades it not
    max_activation_age: float = 30.0
    slippage_bps: float | None = None
    fee_bps: float | None = None
    metrics_every: int = 1
    max_gap_bars: int = 0
    workers: int = 1
    periods_per_year: float | None = None
    policy: str | None = None
    world_store: str | None = None
    origin: str | None = None
    connect_timeout: float = 5.0
    fetch_wait_ms: int = 5
    metrics_port: int | None = None  # serve the run's Prometheus metrics (0: any free port)
    metrics_host: str = "127.0.0.1"
    sink: str | None = None  # an ILP conf: the run's bars, returns and fills into QuestDB
    source: str | None = None  # ccxt:EXCHANGE: bars from the exchange itself, not a topic
    feed: str = "bars"  # what the topic carries: bars, or trades aggregated in the flow
    feed_interval: str | None = None  # bars finer than the strategy's, resampled in the flow
    lateness: float = 0.0  # trades: seconds a trade may lag the latest and count in its bar
    late: str = "drop"  # trades later than that: drop or fold (counted either way)
    empty: str = "skip"  # trades: an interval without a trade gives no bar, or carries


@dataclass
class LiveResult:
    """What a live run did. ``orders`` and ``fills`` are every one the order store holds for
    the strategy in the world; ``new_orders`` and ``new_fills`` count those this run added
    (a rerun over bars already traded, or a resumed run replaying bars after its snapshot,
    finds its orders already recorded).

    >>> r = LiveResult("s", "r1", "paper", "w", LiveStats(), {}, 0, np.empty(0), np.empty(0),
    ...                np.empty(0), pa.table({}), [], [], {})
    >>> r.new_orders, r.already_recorded
    (0, (0, 0))
    """

    strategy: str
    run_id: str
    mode: str
    world: str
    stats: LiveStats
    metrics: dict[str, float]
    n_bars: int
    ts: np.ndarray
    returns: np.ndarray
    equity: np.ndarray
    bars: pa.Table
    orders: list[OrderIntent]
    fills: list[Fill]
    positions: dict[str, float]
    out: Path | None = None
    updates: list[MetricsUpdate] = field(default_factory=list)
    new_orders: int = 0
    new_fills: int = 0
    capital: float = 0.0  # the world's capital: what the gate sizes orders from
    paper: dict[str, float] | None = None  # the paper account (qmtl.live.report.paper_account)
    gate_bars: int = 0  # bars the gate decided in this run
    held_bars: int = 0  # of them, bars whose orders the gate held
    held_by_cause: dict[str, int] = field(default_factory=dict)
    bars_before_active: int = 0  # bars that ran before the world first activated it

    @property
    def already_recorded(self) -> tuple[int, int]:
        """``(orders, fills)`` the store held before this run (or an earlier part of it that
        was killed) recorded them."""
        return len(self.orders) - self.new_orders, len(self.fills) - self.new_fills


def count_line(what: str, new: int, total: int) -> str:
    """``"15 orders"`` when all ``total`` are new, else how many are new and how many were
    already recorded.

    >>> count_line("fills", new=15, total=15)
    '15 fills'
    >>> count_line("orders", new=2, total=15)
    '2 new orders (13 already recorded)'
    """
    if new == total:
        return f"{total} {what}"
    return f"{new} new {what} ({total - new} already recorded)"
