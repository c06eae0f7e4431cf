"""Operator overrides of a strategy's activation: force it active or inactive, or pin its
weight, with a reason and an optional expiry. They hold across metric updates: the engine
applies them to every selection (see :func:`select` and :func:`pin`), until they expire or
are cleared.

>>> now = 100
>>> ovs = {"a": Override(strategy_id="a", state="inactive", reason="broker issue",
...                      who="tok1", at=0)}
>>> select(["a", "b"], ovs, known={"a", "b"}, now=now)
['b']
>>> pin({"b": 0.5, "c": 0.5}, {"b": Override(strategy_id="b", state="active", weight=0.2,
...     reason="r", who="t", at=0)}, now=now)
{'b': 0.2, 'c': 0.5}
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

C = TypeVar("C", bound=BaseModel)


class Override(BaseModel):
    """One operator override (``expires``/``at`` in epoch ns; ``who`` is the token id).

    >>> Override(strategy_id="s", state="active", weight=0.3, reason="r", who="t", at=1).label
    'override: r'
    >>> Override(strategy_id="s", state="inactive", weight=0.3, reason="r", who="t", at=1)
    Traceback (most recent call last):
    ...
    pydantic_core._pydantic_core.ValidationError: 1 validation error for Override
      Value error, a pinned weight needs state 'active' ...
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    strategy_id: str
    state: Literal["active", "inactive"]
    weight: float | None = Field(None, gt=0.0, le=1.0)
    reason: str = Field(min_length=1, max_length=500)
    expires: int | None = None
    who: str
    at: int

    @model_validator(mode="after")
    def _weight_needs_active(self) -> Override:
        if self.weight is not None and self.state != "active":
            raise ValueError("a pinned weight needs state 'active' (got 'inactive')")
        return self

    @property
    def label(self) -> str:
        """The reason events caused by this override carry."""
        return f"override: {self.reason}"

    def live(self, now: int) -> bool:
        """Whether it still holds at ``now`` (epoch ns).

        >>> Override(strategy_id="s", state="active", reason="r", who="t", at=0,
        ...          expires=10).live(10)
        False
        """
        return self.expires is None or now < self.expires


def holding(overrides: dict[str, Override], now: int) -> dict[str, Override]:
    """The overrides that have not expired at ``now``.

    >>> holding({"s": Override(strategy_id="s", state="active", reason="r", who="t", at=0,
    ...                        expires=5)}, now=6)
    {}
    """
    return {sid: o for sid, o in overrides.items() if o.live(now)}


def select(chosen: Iterable[str], overrides: dict[str, Override], known: Collection[str],
           now: int) -> list[str]:
    """The chosen strategies after the overrides: forced-inactive ones out, forced-active
    ones (that have reported: ``known``) in, in sorted order after the chosen.

    >>> o = Override(strategy_id="z", state="active", reason="r", who="t", at=0)
    >>> select(["a"], {"z": o}, known={"a", "z"}, now=0)
    ['a', 'z']
    """
    if not overrides:
        return list(chosen)
    live = holding(overrides, now)
    out = [sid for sid in chosen if sid not in live or live[sid].state == "active"]
    extra = sorted(sid for sid, o in live.items()
                   if o.state == "active" and sid in known and sid not in out)
    return [*out, *extra]


def pin(weights: dict[str, float], overrides: dict[str, Override], now: int) -> dict[str, float]:
    """Weights with the pinned ones set; the others are scaled down in proportion if the
    total would exceed 1 (what is left after the pins is shared as the allocation said).

    >>> o = Override(strategy_id="a", state="active", weight=0.8, reason="r", who="t", at=0)
    >>> {k: round(v, 9) for k, v in pin({"a": 0.5, "b": 0.5}, {"a": o}, now=0).items()}
    {'a': 0.8, 'b': 0.2}
    """
    if not overrides:
        return weights
    live = holding(overrides, now)
    pins = {sid: o.weight for sid, o in live.items()
            if sid in weights and o.weight is not None}
    if not pins:
        return weights
    room = max(0.0, 1.0 - sum(pins.values()))
    rest = {sid: w for sid, w in weights.items() if sid not in pins}
    total = sum(rest.values())
    scale = room / total if total > room and total > 0 else 1.0
    return {sid: float(pins[sid]) if sid in pins else rest[sid] * scale for sid in weights}


def relabel(changes: list[C], overrides: dict[str, Override], now: int) -> list[C]:
    """The changes, with reason ``override: <why>`` for those of a strategy an override
    holds (``changes`` are models with ``strategy_id`` and ``reason``).

    >>> from world_api.domain.evaluator import Change
    >>> o = Override(strategy_id="a", state="inactive", reason="halt", who="t", at=0)
    >>> [c.reason for c in relabel([Change(strategy_id="a", active=False, weight=0.0,
    ...     reason="deactivated: rank 3")], {"a": o}, now=0)]
    ['override: halt']
    """
    if not overrides:
        return changes
    live = holding(overrides, now)
    return [c.model_copy(update={"reason": live[c.strategy_id].label})  # type: ignore[attr-defined]
            if c.strategy_id in live else c for c in changes]  # type: ignore[attr-defined]
