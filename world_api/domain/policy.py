"""A world's policy: gates, score, selection, hysteresis and allocation (pydantic models).

>>> p = parse_policy('''
... min_bars: 500
... gates: {sharpe: ">= 0.8", max_drawdown: "<= 0.25"}
... score: {sharpe: 0.7, linearity: 0.3}
... top_k: 5
... max_correlation: 0.8
... hysteresis: {margin: 0.1, min_dwell_bars: 100}
... allocation: {method: inverse_vol, max_weight: 0.4, min_change: 0.01}
... ''')
>>> p.gates["sharpe"].check(0.9), p.gates["sharpe"].describe("sharpe", 0.42)
(True, 'sharpe 0.42 < gate 0.8')
>>> parse_policy("top_k: 0")
Traceback (most recent call last):
...
world_api.domain.policy.PolicyError: top_k: Input should be greater than or equal to 1
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from qmtl.core.contracts import CHECK_METRIC_NAMES, METRIC_NAMES
from qmtl.core.errors import QmtlError
from world_api.domain import strict

_OPS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_NEGATION = {">=": "<", ">": "<=", "<=": ">", "<": ">=", "==": "!=", "!=": "=="}
_GATE = re.compile(r"^\s*(>=|<=|==|!=|>|<)\s*([-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?)\s*$")

ALLOCATION_METHODS = ("equal", "inverse_vol", "score", "risk_parity", "hrp")

MAX_DEPTH = 8
"""How deeply a policy may nest mappings and lists (a valid one nests 3 deep)."""


class PolicyError(QmtlError, ValueError):
    """A policy is invalid; the message names the field and the reason."""


class Gate(BaseModel):
    """A comparison a metric must pass, written ``"<op> <number>"`` (e.g. ``">= 0.8"``).

    >>> g = Gate.parse("<= 0.25")
    >>> g.check(0.3), g.describe("max_drawdown", 0.3)
    (False, 'max_drawdown 0.3 > gate 0.25')
    """

    model_config = ConfigDict(frozen=True, allow_inf_nan=False)
    op: Literal[">=", ">", "<=", "<", "==", "!=", "in"]
    value: float
    high: float | None = None  # op "in": the band [value, high], both ends included

    @classmethod
    def parse(cls, text: Any) -> Gate:
        """Read ``"<op> <number>"``, or ``[low, high]``: a band (both ends included, e.g.
        ``turnover: [2.5, 175]`` per year); a ValueError says what is wrong.

        >>> band = Gate.parse([2.5, 175])
        >>> band.check(100.0), band.check(200.0), band.describe("turnover", 200.0)
        (True, False, 'turnover 200 outside the band [2.5, 175]')
        """
        if isinstance(text, Gate):
            return text
        if isinstance(text, (list, tuple)):
            if len(text) != 2 or not all(isinstance(x, (int, float)) and not isinstance(
                    x, bool) and math.isfinite(x) for x in text) or text[0] > text[1]:
                raise ValueError(f"bad band {list(text)!r}: write [low, high], two finite "
                                 "numbers with low <= high")
            return cls(op="in", value=float(text[0]), high=float(text[1]))
        if isinstance(text, dict):
            try:
                return cls.model_validate(text)
            except ValidationError as exc:
                raise ValueError(str(policy_error(exc))) from None
        m = _GATE.match(str(text))
        if not m:
            raise ValueError(
                f"bad comparison {text!r}: write '<op> <number>' with op one of "
                f"{', '.join(_OPS)}, e.g. '>= 0.8'"
            )
        value = float(m.group(2))
        if not math.isfinite(value):
            raise ValueError(f"bad comparison {text!r}: the number must be finite")
        return cls(op=m.group(1), value=value)  # type: ignore[arg-type]

    def check(self, value: float) -> bool:
        """True when ``value`` passes (NaN never passes)."""
        if self.op == "in":
            return not math.isnan(value) and self.value <= value <= float(self.high or 0.0)
        return not math.isnan(value) and _OPS[self.op](value, self.value)

    def describe(self, metric: str, value: float) -> str:
        """Why ``value`` fails, e.g. ``sharpe 0.42 < gate 0.8``."""
        if self.op == "in":
            return f"{metric} {value:.4g} outside the band [{self.value:.4g}, {self.high:.4g}]"
        return f"{metric} {value:.4g} {_NEGATION[self.op]} gate {self.value:.4g}"

    def __str__(self) -> str:
        if self.op == "in":
            return f"[{self.value:g}, {self.high:g}]"
        return f"{self.op} {self.value:g}"


class Hysteresis(BaseModel):
    """Stability of the active set: an incumbent is displaced only by a candidate whose
    score is more than ``margin`` higher; a change of state holds for ``min_dwell_bars``."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    margin: float = Field(0.0, ge=0.0)
    min_dwell_bars: int = Field(0, ge=0)


class Allocation(BaseModel):
    """How capital is split among active strategies."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    method: Literal["equal", "inverse_vol", "score", "risk_parity", "hrp"] = "equal"
    max_weight: float = Field(1.0, gt=0.0, le=1.0)
    min_change: float = Field(0.0, ge=0.0, lt=1.0)
    mode: Literal["auto", "manual"] = "auto"  # manual: updates wait for an applied plan


def parse_gates(v: Any) -> dict[str, Gate]:
    """A mapping of metric to comparison, checked (unknown metric, bad comparison).

    >>> parse_gates({"sharpe": ">= 1"})["sharpe"].value
    1.0
    """
    if not isinstance(v, dict):
        raise ValueError("gates must be a mapping of metric to comparison")
    out = {}
    for metric, text in v.items():
        if metric not in METRIC_NAMES and metric not in CHECK_METRIC_NAMES:
            known = ", ".join(METRIC_NAMES + CHECK_METRIC_NAMES)
            raise ValueError(f"{metric}: unknown metric; known: {known}")
        try:
            out[metric] = Gate.parse(text)
        except ValueError as exc:
            raise ValueError(f"{metric}: {exc}") from None
    return out


class PaperRule(BaseModel):
    """backtest -> paper: the backtest record's bars and gates."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    min_bars: int = Field(0, ge=0)
    gates: dict[str, Gate] = Field(default_factory=dict)
    _gates = field_validator("gates", mode="before")(lambda cls, v: parse_gates(v))


class LiveRule(BaseModel):
    """paper -> live: the paper record's bars and gates, then an operator's approval (or
    none with ``approval: auto``)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    min_paper_bars: int = Field(0, ge=0)
    gates: dict[str, Gate] = Field(default_factory=dict)
    approval: Literal["operator", "auto"] = "operator"
    _gates = field_validator("gates", mode="before")(lambda cls, v: parse_gates(v))


class Promotion(BaseModel):
    """Stage rules (see :mod:`world_api.domain.stages`): ``paper``, ``live`` and ``demote``
    (comparisons that, when any holds, send a strategy one stage back).

    >>> Promotion.model_validate({"demote": {"max_drawdown": "> 0.3"}}).live.approval
    'operator'
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    paper: PaperRule = Field(default_factory=PaperRule)
    live: LiveRule = Field(default_factory=LiveRule)
    demote: dict[str, Gate] = Field(default_factory=dict)
    _gates = field_validator("demote", mode="before")(lambda cls, v: parse_gates(v))


_SILENCE = re.compile(r"^\s*(\d+(\.\d*)?|\.\d+)\s*(s|sec|seconds?|bars?)?\s*$")


class MaxSilence(BaseModel):
    """How long a paper or live strategy may go without an update before it loses its
    weight: ``value`` seconds, or ``value`` bars of the strategy's interval. Written
    ``120`` or ``"120 s"`` (seconds) or ``"3 bars"``.

    >>> MaxSilence.parse("3 bars"), MaxSilence.parse(120).describe()
    (MaxSilence(value=3.0, unit='bars'), '120 s')
    >>> MaxSilence.parse("soon")
    Traceback (most recent call last):
    ...
    ValueError: bad max_silence 'soon': write seconds (120, '120 s') or bars ('3 bars')
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    value: float = Field(gt=0.0)
    unit: Literal["s", "bars"] = "s"

    @classmethod
    def parse(cls, v: Any) -> MaxSilence:
        """Read a number of seconds, ``"<n> s"`` or ``"<n> bars"`` (or the model's dict)."""
        if isinstance(v, MaxSilence | dict):
            return v if isinstance(v, MaxSilence) else cls.model_validate(v)
        if isinstance(v, int | float) and not isinstance(v, bool):
            if not math.isfinite(v) or v <= 0:
                raise ValueError(f"bad max_silence {v!r}: must be a positive number of seconds")
            return cls(value=float(v))
        m = _SILENCE.match(str(v)) if isinstance(v, str) else None
        if not m or float(m.group(1)) <= 0:
            raise ValueError(
                f"bad max_silence {v!r}: write seconds (120, '120 s') or bars ('3 bars')"
            )
        unit = "bars" if (m.group(3) or "s").startswith("bar") else "s"
        return cls(value=float(m.group(1)), unit=unit)  # type: ignore[arg-type]

    def describe(self) -> str:
        """``"120 s"`` or ``"3 bars"``."""
        return f"{self.value:g} {'s' if self.unit == 's' else 'bars'}"


class OosSharpe(BaseModel):
    """The out-of-sample gate: the Sharpe of the last ``bars`` returns of the record the
    gates read must be at least ``min`` (:func:`world_api.domain.alpha_checks.oos_sharpe`).

    >>> OosSharpe(bars=60, min=0.5).describe(0.2)
    'oos_sharpe 0.2 over the last 60 bars < gate 0.5'
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)
    bars: int = Field(ge=2, le=2_000)  # at most the returns a record keeps (records.RING)
    min: float

    def describe(self, value: float) -> str:
        """Why ``value`` fails."""
        return f"oos_sharpe {value:.4g} over the last {self.bars} bars < gate {self.min:.4g}"


class Policy(BaseModel):
    """A world's policy (see DESIGN.md, "The world"). Every field has a default, so an empty
    policy is valid: no gates, score by Sharpe, top 10, equal weights.

    >>> Policy().score
    {'sharpe': 1.0}
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    min_bars: int = Field(0, ge=0)
    gates: dict[str, Gate] = Field(default_factory=dict)
    score: dict[str, float] = Field(default_factory=lambda: {"sharpe": 1.0})
    top_k: int = Field(10, ge=1)
    max_correlation: float = Field(1.0, gt=0.0, le=1.0)
    hysteresis: Hysteresis = Field(default_factory=Hysteresis)
    allocation: Allocation = Field(default_factory=Allocation)
    promotion: Promotion | None = None  # stages backtest -> paper -> live; None: unmanaged
    # the record gates and score read (world_api.domain.records.pick): auto, or one stage
    record: Literal["auto", "backtest", "shadow", "paper", "live"] = "auto"
    # who computes backtest records: the client (its own backtest) or the world's evaluator
    evaluation: Literal["client", "world"] = "client"
    max_silence: MaxSilence | None = None  # None: silence costs nothing
    oos_sharpe: OosSharpe | None = None  # None: no out-of-sample gate

    @field_validator("max_silence", mode="before")
    @classmethod
    def _parse_silence(cls, v: Any) -> Any:
        return None if v is None else MaxSilence.parse(v)

    @field_validator("gates", mode="before")
    @classmethod
    def _parse_gates(cls, v: Any) -> Any:
        return parse_gates(v)

    @field_validator("score")
    @classmethod
    def _check_score(cls, v: dict[str, float]) -> dict[str, float]:
        for metric, w in v.items():
            if metric not in METRIC_NAMES:
                raise ValueError(f"{metric}: unknown metric; known: {', '.join(METRIC_NAMES)}")
            if not math.isfinite(w):
                raise ValueError(f"{metric}: weight must be a finite number, got {w}")
        if not v or not any(w != 0 for w in v.values()):
            raise ValueError("needs at least one metric with a non-zero weight")
        return v


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc)


def policy_error(exc: ValidationError) -> PolicyError:
    """One readable message from pydantic's errors: ``field: reason; field: reason``.

    >>> try:
    ...     Policy(top_k=0)
    ... except ValidationError as exc:
    ...     print(policy_error(exc))
    top_k: Input should be greater than or equal to 1
    """
    parts = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        path = _field_path(err["loc"])
        parts.append(f"{path}: {msg}" if path else msg)
    return PolicyError("; ".join(parts))


def nesting_depth(data: Any) -> int:
    """How deeply ``data`` nests mappings and lists, found without recursion.

    >>> nesting_depth({"gates": {"sharpe": {"op": ">=", "value": 1}}}), nesting_depth(3)
    (3, 0)
    """
    deepest, stack = 0, [(data, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if depth <= MAX_DEPTH:
            stack.extend((c, depth + 1) for c in children)
    return deepest


def parse_policy(text: str | dict[str, Any]) -> Policy:
    """A :class:`Policy` from YAML or JSON text (or an already-parsed mapping).

    >>> parse_policy('{"gates": {"sharpee": ">= 1"}}')  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    world_api.domain.policy.PolicyError: gates: sharpee: unknown metric; known: total_return, ...
    """
    too_deep = f"policy nests deeper than {MAX_DEPTH} levels of mappings and lists"
    if isinstance(text, dict):
        data: Any = text
    else:
        data = strict.load_document(text, "policy", PolicyError, too_deep)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PolicyError(f"policy must be a mapping, got {type(data).__name__}")
    if nesting_depth(data) > MAX_DEPTH:
        raise PolicyError(too_deep)
    try:
        return Policy.model_validate(data)
    except ValidationError as exc:
        raise policy_error(exc) from None
