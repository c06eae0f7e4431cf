"""The bodies the routes answer with, as models: a route declares its own with
``response_model=``, so ``/openapi.json`` says what it serves and schemathesis checks each
answer against it (see ``tests/world_api/test_schemathesis.py``).

>>> WorldView(id="w", name="", capital=1.0, mode="paper", policy_version=1, seq=0).seq
0
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from qmtl.core.contracts import ActivationEvent, ControlEvent


class WorldView(BaseModel):
    """A world with its policy version and event seq (``GET /worlds/{world}``); the fields
    of :class:`~world_api.service.store.WorldInfo`, unconstrained here: what is stored is
    served as it is."""

    id: str
    name: str
    capital: float
    mode: Literal["backtest", "paper", "live"]
    policy_version: int
    seq: int
    market: str | None = None  # its market's summary (None: no market, any symbols)
    market_version: int | None = None


class Events(BaseModel):
    """What a write caused: the activation events it stored (``PUT .../policy``).

    >>> PolicySet(world="w", version=2).events
    []
    """

    world: str
    events: list[ActivationEvent] = Field(default_factory=list)


class PolicySet(Events):
    """The version a ``PUT /worlds/{world}/policy`` stored and the events it caused."""

    version: int


class PolicyVersion(BaseModel):
    """One version of a world's policy (``GET /worlds/{world}/policy``).

    >>> PolicyVersion(world="w", version=1, policy={}).version
    1
    """

    world: str
    version: int
    policy: dict[str, Any]


class Ingested(BaseModel):
    """``POST /worlds/{world}/metrics``: updates accepted, duplicates skipped, events caused.

    >>> Ingested(accepted=1, duplicates=0).events
    []
    """

    accepted: int
    duplicates: int
    events: list[ActivationEvent] = Field(default_factory=list)


class ActivationRow(BaseModel):
    """One strategy of the activation table.

    >>> ActivationRow(strategy_id="s", active=True, weight=1.0, status="active", rank=1).rank
    1
    """

    strategy_id: str
    active: bool
    weight: float
    status: Literal["active", "candidate", "rejected"]
    rank: int | None
    override: str | None = None  # "override: <why>" while an operator's override holds
    stage: Literal["backtest", "paper", "live"] | None = None  # None: stages not managed


class ActivationTable(BaseModel):
    """``GET /worlds/{world}/activation``: the table and the event seq it reflects.

    >>> ActivationTable(world="w", seq=0, policy_version=1, strategies=[]).seq
    0
    """

    world: str
    seq: int
    policy_version: int
    strategies: list[ActivationRow]
    frozen: str | None = None  # why the world holds orders now (a plan apply), or None
    stages: bool = False  # the world decides stages: a strategy not listed is in backtest


class Weights(BaseModel):
    """``GET /worlds/{world}/allocations``: the published weights at a seq.

    >>> Weights(world="w", seq=3, weights={"a": 0.5}).weights
    {'a': 0.5}
    """

    world: str
    seq: int
    weights: dict[str, float]


class WeightChange(BaseModel):
    """A weight a plan would change.

    >>> WeightChange.model_validate({"from": 0.1, "to": 0.2}).to
    0.2
    """

    from_: float = Field(alias="from")
    to: float

    model_config = {"populate_by_name": True, "serialize_by_alias": True}


class Plan(BaseModel):
    """``POST /worlds/{world}/allocations/plan``: a saved plan of the allocation now.

    >>> Plan(world="w", plan_id="p", base_seq=0, current={}, proposed={}, changes={}).plan_id
    'p'
    """

    world: str
    plan_id: str
    base_seq: int
    current: dict[str, float]
    proposed: dict[str, float]
    changes: dict[str, WeightChange]


class Applied(Events):
    """``POST /worlds/{world}/allocations/apply``: the plan applied and its events.

    >>> Applied(world="w", plan_id="p").events
    []
    """

    plan_id: str
    apply_id: str = ""
    control: list[ControlEvent] = Field(default_factory=list)  # freeze, drain, switch, ...


class ReturnPoint(BaseModel):
    """One point of a return series: the bar's close time (ns), its return and the equity
    after it."""

    ts: int
    return_: float = Field(alias="return")
    equity: float


class WorldReturns(BaseModel):
    """``GET /worlds/{world}/returns``: the world's realized or pro forma points.

    >>> WorldReturns.model_validate({"world": "w", "kind": "realized",
    ...     "points": [{"ts": 1, "return": 0.01, "equity": 1.01}]}).points[0].return_
    0.01
    """

    world: str
    kind: Literal["realized", "pro_forma"]
    points: list[ReturnPoint]
    realized_source: Literal["book", "records"] = Field(
        "records", description="book: the book's marked-to-market return; records: the sum "
        "of the strategies' paper and live returns")


class StrategyReturns(BaseModel):
    """``GET /worlds/{world}/strategies/{sid}/returns``: a strategy's kept timed returns."""

    strategy_id: str
    points: list[ReturnPoint]


class SeriesMetrics(BaseModel):
    """A return series' length and its streaming metrics (None where not defined yet)."""

    n_bars: int
    metrics: dict[str, float | None]


class ProFormaMetrics(SeriesMetrics):
    """The pro forma series' metrics: it stands on the bars every active strategy has a
    return for (``shared_bars``, the first and last of them); the share of their span they
    all cover (None: no active strategy) and a warning when that is low."""

    overlap: float | None = None
    shared_bars: int | None = None  # the bars every active strategy has a return for
    first_shared: int | None = None  # the first and last of them (epoch ns)
    last_shared: int | None = None
    warnings: list[str] = []


class WorldMetrics(BaseModel):
    """``GET /worlds/{world}/metrics``: the realized and pro forma metrics of the world."""

    world: str
    realized_source: Literal["book", "records"] = "records"
    realized: SeriesMetrics
    pro_forma: ProFormaMetrics


class WorldUpdate(BaseModel):
    """The ``world`` event of ``GET /worlds/{world}/updates``: the latest realized point
    (None before the first) and the metrics as ``GET /worlds/{world}/metrics`` has them."""

    realized: ReturnPoint | None
    metrics: dict[str, SeriesMetrics]


class StrategyUpdate(BaseModel):
    """The ``metrics`` event of ``GET /worlds/{world}/updates``: a strategy after an
    accepted update."""

    strategy_id: str
    n_bars: int
    as_of: int
    metrics: dict[str, float | None]
    active: bool
    weight: float
    rank: int | None
