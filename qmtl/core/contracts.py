"""Data contracts shared by every producer and consumer (see DESIGN.md, "Data contracts").

Time is ``int64`` nanoseconds since the epoch, UTC, everywhere. These models are serialized
as JSON on HTTP and Kafka.

>>> u = MetricsUpdate(world="w", strategy_id="s", run_id="r", seq=1, mode="backtest",
...                   as_of=20, n_bars=3, metrics={"sharpe": 1.0},
...                   returns=[(10, 0.01), (20, -0.02)])
>>> MetricsUpdate.model_validate_json(u.model_dump_json()) == u
True
>>> u.model_dump()["returns"]
[(10, 0.01), (20, -0.02)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

Mode = Literal["backtest", "paper", "live"]

Symbol = Annotated[str, Field(min_length=1, max_length=100)]
"""A symbol as a metrics update names it."""

UpdateMode = Literal["backtest", "shadow", "paper", "live"]
"""The stage whose record a metrics update adds to: a :data:`Mode`, or ``shadow`` (a
strategy run forward on new bars with orders that never leave)."""

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
"""The range of every integer a store holds (a signed 64-bit column)."""

Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
"""An integer that fits a signed 64-bit store column."""

NonNegInt64 = Annotated[int, Field(ge=0, le=INT64_MAX)]
"""A non-negative integer that fits a signed 64-bit store column."""



def has_control_chars(text: str) -> bool:
    r"""True when ``text`` holds a control character (which no store keeps faithfully).

    >>> has_control_chars("s1"), has_control_chars("s\x00")
    (False, True)
    """
    return any(ord(c) < 0x20 or ord(c) == 0x7F for c in text)


def no_control_chars(text: str) -> str:
    r"""``text`` itself, or a ValueError when it holds a control character.

    >>> no_control_chars("s\n")
    Traceback (most recent call last):
    ...
    ValueError: must not contain control characters (found '\n' at 1)
    """
    for i, c in enumerate(text):
        if ord(c) < 0x20 or ord(c) == 0x7F:
            raise ValueError(f"must not contain control characters (found {c!r} at {i})")
    return text


Identifier = Annotated[str, Field(min_length=1, max_length=200), AfterValidator(no_control_chars)]
"""An id or name: 1 to 200 characters, none of them a control character (NUL, newline, ...)."""

WorldId = Annotated[str, AfterValidator(no_control_chars)]
"""A world id in a request's path: no control characters (PostgreSQL cannot even look one up
with a NUL)."""

METRIC_NAMES: tuple[str, ...] = (
    "total_return",
    "cagr",
    "volatility",
    "sharpe",
    "sortino",
    "max_drawdown",
    "calmar",
    "win_rate",
    "profit_factor",
    "linearity",
    "turnover",
    "exposure",
    "n_bars",
)
"""The metric names that appear in results, in display order."""

CHECK_METRIC_NAMES: tuple[str, ...] = ("max_symbol_weight", "half_universe_ratio")
"""Metrics a submit may add for a world's pre-trade gates (see
:mod:`world_api.domain.alpha_checks`): the largest share of one symbol in the book and
Sharpe(half universe) / Sharpe(full universe)."""

BAR_COLUMNS: tuple[str, ...] = ("ts", "open", "high", "low", "close", "volume")
"""Columns of a bar batch; ``ts`` is the bar's close time in int64 ns UTC."""


TimedReturn = tuple[Int64, float]
"""One period's return with the close time of the bar it was earned on: ``(ts, r)``, ts in
int64 ns UTC."""

OLD_RETURNS = (
    "returns are now [ts, return] pairs (ts = the close time of the bar the return was earned "
    "on, int64 ns UTC, strictly increasing); got a bare number at returns[{i}]"
)
"""The message an update in the old form (a bare list of numbers) gets."""


def timed_returns(ts: Iterable[Any], returns: Iterable[Any]) -> list[TimedReturn]:
    """``(ts, r)`` pairs from parallel sequences of bar close times and returns (plain Python
    ints and floats, as a MetricsUpdate's ``returns`` holds them).

    >>> timed_returns([10, 20], [0.5, -0.25])
    [(10, 0.5), (20, -0.25)]
    >>> timed_returns([1], [])
    Traceback (most recent call last):
    ...
    ValueError: zip() argument 2 is shorter than argument 1
    """
    return [(int(t), float(r)) for t, r in zip(ts, returns, strict=True)]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MetricsUpdate(_Frozen):
    """A strategy's metrics as of a bar, streamed from a dataflow to a world.

    ``(strategy_id, run_id, seq)`` is the idempotency key; ``seq`` is monotonic per run.
    ``returns`` holds the per-period returns since the previous update, each with the close
    time of its bar: ``[(ts, r), ...]``, ts strictly increasing, r finite (on the wire
    ``[[ts, r], ...]``). The world aligns strategies on these times.

    >>> from pydantic import ValidationError
    >>> try:
    ...     MetricsUpdate(world="w", strategy_id="s", run_id="r", seq=0, mode="live", as_of=1,
    ...                   n_bars=1, metrics={"sharpe": float("nan")})
    ... except ValidationError as exc:
    ...     print(exc.errors()[0]["msg"])
    Value error, metric 'sharpe' is not finite (nan)
    """

    world: Identifier
    strategy_id: Identifier
    run_id: Identifier
    seq: NonNegInt64
    mode: UpdateMode
    as_of: Int64
    n_bars: NonNegInt64
    metrics: dict[str, float]
    returns: list[TimedReturn] = Field(default_factory=list)
    fingerprint: Identifier | None = None
    # the symbols the strategy trades (a world with a market refuses any outside its universe)
    symbols: list[Symbol] | None = Field(None, max_length=10_000)

    @field_validator("metrics")
    @classmethod
    def _finite_metrics(cls, v: dict[str, float]) -> dict[str, float]:
        for name, value in v.items():
            if not math.isfinite(value):
                raise ValueError(f"metric {name!r} is not finite ({value})")
        return v

    @field_validator("returns", mode="before")
    @classmethod
    def _pairs(cls, v: Any) -> Any:
        if isinstance(v, list | tuple):
            for i, item in enumerate(v):
                if isinstance(item, int | float) and not isinstance(item, bool):
                    raise ValueError(OLD_RETURNS.format(i=i))
        return v

    @field_validator("returns")
    @classmethod
    def _timed_returns(cls, v: list[TimedReturn]) -> list[TimedReturn]:
        last = None
        for i, (ts, value) in enumerate(v):
            if not math.isfinite(value):
                raise ValueError(f"returns[{i}] is not finite ({value})")
            if last is not None and ts <= last:
                raise ValueError(
                    f"returns[{i}]: ts {ts} is not after the previous ts {last} (the times of "
                    "an update's returns must strictly increase)"
                )
            last = ts
        return v


class ActivationEvent(_Frozen):
    """One change of a strategy's activation or weight in a world (world -> order gate).

    >>> ActivationEvent(world="w", seq=1, ts=0, strategy_id="s", active=True, weight=0.5,
    ...                 reason="top_k", policy_version=1).active
    True
    """

    world: str
    seq: NonNegInt64
    ts: Int64
    strategy_id: str
    active: bool
    weight: float = Field(ge=0.0, le=1.0)
    reason: str
    policy_version: NonNegInt64
    stage: Mode | None = None  # set on a stage move: the stage the strategy is in now


class ControlEvent(_Frozen):
    """A step of a two-phase plan apply in a world (world -> order gate, ``event: control``
    on the event stream, in the same seq order as activation events): ``freeze`` and
    ``drain`` hold the world's orders, ``switch`` marks the new allocation in place,
    ``unfreeze`` lets orders go again (``outcome`` says applied or rolled back).

    >>> ControlEvent(world="w", seq=3, ts=0, step="freeze", apply_id="a", plan_id="p").step
    'freeze'
    """

    world: str
    seq: NonNegInt64
    ts: Int64
    step: Literal["freeze", "drain", "switch", "unfreeze"]
    apply_id: str
    plan_id: str
    outcome: str | None = None


class EvaluationEvent(_Frozen):
    """One evaluation of a strategy by its world's evaluator (world -> anyone following the
    world, ``event: evaluation`` on the event stream, in the same seq order as activation
    events): ``kind`` is ``evaluated`` for an artifact's first evaluation in the world and
    ``reevaluated`` for a later one (the market's window rolled); the market version it ran
    on (None: no market), the data's version (the dataset fingerprint of the bars read), the
    window (first and last bar close time, bars) and the record's key metrics. A decision the
    record changed is an activation event of its own, just before this one.

    >>> EvaluationEvent(world="w", seq=4, ts=0, strategy_id="s", run_id="world-a-1",
    ...                 kind="reevaluated", market_version=2, fingerprint="ab", first=1,
    ...                 last=9, n_bars=9, metrics={"sharpe": 0.5}).kind
    'reevaluated'
    """

    world: str
    seq: NonNegInt64
    ts: Int64
    strategy_id: str
    run_id: str
    kind: Literal["evaluated", "reevaluated"]
    market_version: NonNegInt64 | None = None
    fingerprint: str | None = None
    first: Int64 | None = None
    last: Int64 | None = None
    n_bars: NonNegInt64 = 0
    metrics: dict[str, float] = Field(default_factory=dict)


class OrderIntent(_Frozen):
    """An order the gate lets through to the broker.

    >>> OrderIntent(world="w", strategy_id="s", symbol="AAPL", ts=0, target_weight=0.2,
    ...             target_qty=10.0, reason="rebalance").symbol
    'AAPL'
    """

    world: str
    strategy_id: str
    symbol: str
    ts: int
    target_weight: float
    target_qty: float
    reason: str


class Fill(_Frozen):
    """A broker's fill of an order.

    >>> Fill(order_id="o1", symbol="AAPL", ts=0, qty=10.0, price=100.0, fee=0.1).qty
    10.0
    """

    order_id: str
    symbol: str
    ts: int
    qty: float
    price: float = Field(gt=0.0)
    fee: float = Field(ge=0.0)


class SubmitResult(_Frozen):
    """What ``qmtl submit`` / ``Runner.submit`` answers: the world's decision and why.

    >>> r = SubmitResult(world="w", strategy_id="s", run_id="r", status="candidate",
    ...                  metrics={"sharpe": 0.4}, contribution=0.0, weight=0.0, rank=3,
    ...                  improvement_hints=["sharpe 0.40 < gate 0.8"])
    >>> r.status, r.improvement_hints[0]
    ('candidate', 'sharpe 0.40 < gate 0.8')

    ``world_metrics`` is the world's pro forma ``sharpe``, ``total_return`` and
    ``max_drawdown`` ``before`` the strategy's updates, ``after`` them, and their ``change``
    (after - before); empty when the world could not say (a dry run's local world says).
    """

    world: str
    strategy_id: str
    run_id: str
    status: Literal["active", "candidate", "rejected"]
    metrics: dict[str, float]
    contribution: float
    weight: float
    rank: int | None
    improvement_hints: list[str] = Field(default_factory=list)
    n_bars: int = 0
    dry_run: bool = False
    world_metrics: dict[str, dict[str, float]] = Field(default_factory=dict)
    artifact_id: str | None = None  # the artifact the world stored (qmtl.artifact), if any
    evaluating: bool = False  # evaluation: world and the world had not answered in time


def order_key(world: str, strategy_id: str, symbol: str, ts: int) -> str:
    """The idempotency key of the order decided at bar ``ts``.

    >>> order_key("w", "s", "AAPL", 5)
    'w/s/AAPL/5'
    """
    return f"{world}/{strategy_id}/{symbol}/{ts}"
