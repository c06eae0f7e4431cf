"""What the world engine answers (:mod:`world_api.domain.evaluator`): a :class:`Change` of a
strategy's activation or weight, a :class:`StrategyView` of one strategy, and the check that
an update comes after the last one of its run.

>>> Change(strategy_id="a", active=True, weight=0.5, reason="top_k").stage is None
True
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from qmtl.core.contracts import MetricsUpdate
from qmtl.core.errors import QmtlError
from world_api.domain.overrides import Override


class Change(BaseModel):
    """A change of one strategy's activation or weight."""

    strategy_id: str
    active: bool
    weight: float
    reason: str
    stage: Literal["backtest", "paper", "live"] | None = None  # set: a stage move


class RecordSummary(BaseModel):
    """One stage's record in a strategy's view: its bars, runs and latest metrics, and when
    the world last heard from it (epoch ns; None: a record stored before that was kept).

    >>> RecordSummary(n_bars=3, runs=["r"], metrics={}, last_seen=None).n_bars
    3
    """

    n_bars: int
    runs: list[str]
    metrics: dict[str, float]
    last_seen: int | None


class StrategyView(BaseModel):
    """What the world thinks of one strategy, with concrete hints when it falls short."""

    strategy_id: str
    status: Literal["active", "candidate", "rejected"]
    active: bool
    weight: float
    rank: int | None
    score: float | None
    n_bars: int
    metrics: dict[str, float]
    hints: list[str]
    contribution: float
    override: Override | None = None  # an operator's override that holds now
    stage: Literal["backtest", "paper", "live"] | None = None  # None: stages not managed
    awaiting_approval: bool = False
    stage_hints: list[str] = []
    record: str = "backtest"  # the stage whose record gates and score read (records.pick)
    records: dict[str, RecordSummary] = {}  # its record per stage
    silent: bool = False  # silent past the policy's max_silence: no weight until it reports


class StaleUpdate(QmtlError, ValueError):
    """An update's seq is not greater than the last one seen for its (strategy, run)."""


def check_after(update: MetricsUpdate, last: int | None) -> None:
    """Raise :class:`StaleUpdate` unless ``update.seq`` is after ``last`` (the last seq of
    its strategy and run; None: nothing before)."""
    if last is not None and update.seq <= last:
        raise StaleUpdate(
            f"{update.strategy_id}: seq {update.seq} of run {update.run_id!r} "
            f"is not after the last seen seq {last}"
        )


def summaries(records: Any) -> dict[str, RecordSummary]:
    """The :class:`RecordSummary` of each stage's record (``world_api.domain.records``).

    >>> from world_api.domain.records import Records
    >>> r = Records(); _ = r.add("paper", "p", 4, {}, [], 9)
    >>> summaries(r)["paper"].last_seen
    9
    """
    return {
        stage: RecordSummary(
            n_bars=r.n_bars, runs=sorted(r.runs), metrics=r.metrics, last_seen=r.last_seen
        )
        for stage, r in records.items()
    }
