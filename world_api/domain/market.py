"""A world's market: the universe, interval, evaluation window, execution rule and costs, and
the data source its strategies are judged on (pydantic models; pure, no I/O).

A market is YAML or JSON. The universe lists symbols (and optional named groups of them);
``qmtl world create W --market market.yaml`` may give it as a file of symbols instead
(``universe: {file: symbols.txt}``: one symbol a line, or ``SYMBOL,GROUP``), which the CLI
reads and sends as symbols. The window is fixed dates or the last N bars (rolling). The
execution is that of a backtest (``dataflows.execution.Execution``) with the fee
``cost_bps``. The source is a catalog path or a QuestDB, with its dataset fingerprint.

>>> m = parse_market('''
... universe: {symbols: [AAPL, MSFT, GOOG], groups: {tech: [AAPL, MSFT]}}
... interval: 1d
... window: {start: 2015-01-01, end: 2021-12-31}
... execution: {rule: next_open, spread_bps: 2, cost_bps: 1}
... source: {catalog: /data/catalog, fingerprint: ab12cd}
... ''')
>>> m.window.describe(), outside(m, ["AAPL", "TSLA", "NFLX"])
('2015-01-01 to 2021-12-31', ['NFLX', 'TSLA'])
>>> parse_market("interval: 2d\\nuniverse: {symbols: [A]}")  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
world_api.domain.market.MarketError: interval: Input should be '1m', '5m', ...
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from qmtl.core.errors import QmtlError
from world_api.domain import strict
from world_api.domain.policy import MAX_DEPTH, nesting_depth

MAX_SYMBOLS = 10_000
"""Symbols a market's universe may hold."""


class MarketError(QmtlError, ValueError):
    """A market is invalid; the message names the field and the reason."""


class Universe(BaseModel):
    """The symbols a world trades, and named groups of them (each a subset)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    symbols: list[str] = Field(min_length=1, max_length=MAX_SYMBOLS)
    groups: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check(self) -> Universe:
        seen: set[str] = set()
        for s in self.symbols:
            if not s or not s.strip() or s != s.strip():
                raise ValueError(f"symbol {s!r} is empty or has surrounding spaces")
            if s in seen:
                raise ValueError(f"symbol {s!r} is listed twice")
            seen.add(s)
        for name, members in self.groups.items():
            extra = sorted(set(members) - seen)
            if extra:
                raise ValueError(f"group {name!r} names symbols not in the universe: {extra}")
        return self


class Window(BaseModel):
    """Fixed dates (``start``, ``end``, inclusive) or the last ``last_bars`` bars (rolling)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    start: dt.date | None = None
    end: dt.date | None = None
    last_bars: int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _check(self) -> Window:
        fixed = self.start is not None or self.end is not None
        if fixed == (self.last_bars is not None):
            raise ValueError("give either start and end (fixed dates) or last_bars (rolling)")
        if fixed and (self.start is None or self.end is None):
            raise ValueError("a fixed window needs both start and end")
        if self.start is not None and self.end is not None and self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        return self

    def describe(self) -> str:
        """``2015-01-01 to 2021-12-31`` or ``last 500 bars``."""
        if self.last_bars is not None:
            return f"last {self.last_bars} bars"
        return f"{self.start} to {self.end}"


class Costs(BaseModel):
    """The execution rule and cost model, with the fields of a backtest's
    ``dataflows.execution.Execution`` (the world's domain does not import it: the same
    bounds are checked here) and the fee ``cost_bps``.

    >>> Costs(rule="next_open", spread_bps=2).rule
    'next_open'
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
    rule: Literal["close", "next_open"] = "close"
    spread_bps: float = Field(0.0, ge=0.0)
    slippage_vol: float = Field(0.0, ge=0.0)
    vol_window: int = Field(20, ge=2)
    no_trade_band: float = Field(0.0, ge=0.0)
    min_order_notional: float = Field(0.0, ge=0.0)
    cost_bps: float = Field(0.0, ge=0.0)


class Source(BaseModel):
    """Where the market's bars come from: a ``catalog`` path or a ``questdb`` URL (with its
    ``dataset``), and the dataset's ``fingerprint`` (what the data was when declared)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    catalog: str | None = None
    questdb: str | None = None
    dataset: str | None = None
    fingerprint: str | None = Field(None, max_length=200)

    @model_validator(mode="after")
    def _check(self) -> Source:
        if (self.catalog is None) == (self.questdb is None):
            raise ValueError("give either catalog (a path) or questdb (a URL)")
        return self


class Market(BaseModel):
    """A world's market (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    universe: Universe
    interval: Literal["1m", "5m", "15m", "1h", "4h", "1d"] = "1d"
    window: Window | None = None
    execution: Costs = Field(default_factory=Costs)
    source: Source | None = None

    def summary(self) -> str:
        """One line for ``qmtl world status`` and the dashboard.

        >>> Market(universe=Universe(symbols=["A", "B"])).summary()
        '2 symbols · 1d · window: all bars · close, 0 bps'
        """
        win = self.window.describe() if self.window is not None else "all bars"
        ex = self.execution
        src = ""
        if self.source is not None:
            src = f" · {self.source.catalog or self.source.questdb}"
            src += f" ({self.source.fingerprint})" if self.source.fingerprint else ""
        n = len(self.universe.symbols)
        return (
            f"{n} symbol{'s' if n != 1 else ''} · {self.interval} · window: {win} · "
            f"{ex.rule}, {ex.cost_bps:g} bps{src}"
        )


def outside(market: Market, symbols: Iterable[str]) -> list[str]:
    """The ``symbols`` not in the market's universe, sorted (empty: a subset).

    >>> outside(Market(universe=Universe(symbols=["A"])), ["A"])
    []
    """
    known = set(market.universe.symbols)
    return sorted({s for s in symbols if s not in known})


def outside_hint(world: str, market: Market, extra: list[str]) -> str:
    """The refusal of a submission whose symbols are outside ``world``'s universe.

    >>> m = Market(universe=Universe(symbols=["A", "B"]))
    >>> outside_hint("w", m, ["X"])
    "symbols outside world 'w''s universe: X (its universe has 2 symbols: A, B)"
    """
    shown = ", ".join(market.universe.symbols[:10])
    more = "" if len(market.universe.symbols) <= 10 else ", ..."
    return (
        f"symbols outside world {world!r}'s universe: {', '.join(extra)} (its universe has "
        f"{len(market.universe.symbols)} symbols: {shown}{more})"
    )


def _error(exc: ValidationError) -> MarketError:
    parts = []
    for err in exc.errors():
        msg = err["msg"].removeprefix("Value error, ")
        path = ".".join(str(p) for p in err["loc"])
        parts.append(f"{path}: {msg}" if path else msg)
    return MarketError("; ".join(parts))


def parse_market(text: str | dict[str, Any]) -> Market:
    """A :class:`Market` from YAML or JSON text (or a parsed mapping); a MarketError that
    names the field otherwise.

    >>> parse_market("universe: {symbols: []}")
    Traceback (most recent call last):
    ...
    world_api.domain.market.MarketError: universe.symbols: List should have at least 1 item ...
    """
    if isinstance(text, dict):
        data: Any = text
    else:
        data = strict.load_document(text, "market", MarketError, "market nests too deeply")
    if not isinstance(data, dict):
        raise MarketError(f"market must be a mapping, got {type(data).__name__}")
    if nesting_depth(data) > MAX_DEPTH:
        raise MarketError(f"market nests deeper than {MAX_DEPTH} levels of mappings and lists")
    try:
        return Market.model_validate(data)
    except ValidationError as exc:
        raise _error(exc) from None
