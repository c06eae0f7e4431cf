"""The user-facing strategy class.

A strategy declares its universe, bar interval and parameters as class attributes and
returns, from ``signal``, an expression of target weights per symbol: a boolean expression
means 1.0 when true and 0.0 when false; NaN (warm-up) means 0.0.

>>> class SmaCross(Strategy):
...     symbols = ["AAPL"]
...     interval = "1d"
...     fast: int = 10
...     slow: int = 50
...
...     def signal(self, bars):
...         return bars.close.sma(self.fast) > bars.close.sma(self.slow)
>>> SmaCross.parameters()
{'fast': 10, 'slow': 50}
>>> s = SmaCross(fast=5)
>>> s.fast, s.target().lookback
(5, 49)
>>> SmaCross(fats=5)
Traceback (most recent call last):
...
qmtl.strategy.StrategyError: SmaCross has no parameter 'fats'; parameters: fast, slow
"""

from __future__ import annotations

import hashlib
import inspect
import json
import math
import re
import typing
from traceback import FrameSummary
from typing import Any, ClassVar

from dataflows.execution import Execution, ExecutionError
from qmtl.alpha.graph import strategy_spec
from qmtl.core.errors import QmtlError
from qmtl.core.expr import COLUMNS, Expr, as_expr, col
from qmtl.core.intervals import INTERVALS
from qmtl.indicators import atr
from qmtl.usercode import exception_line, is_user_file, user_frame, where

EXECUTION_SETTINGS: tuple[str, ...] = (
    "execution", "spread_bps", "slippage_vol", "vol_window", "no_trade_band",
    "min_order_notional", "lot_size", "capital",
)
"""Class attributes that say how the weights are executed (:mod:`dataflows.execution`)."""

RESERVED: frozenset[str] = frozenset(
    {"symbols", "interval", "cost_bps", "max_gross", "max_net", "name", "warmup", "context",
     "calendar", *EXECUTION_SETTINGS}
)
"""Class attributes with a meaning of their own, not strategy parameters."""


class StrategyError(QmtlError, ValueError):
    """A strategy is malformed or was given bad parameters."""


class StrategyCodeError(StrategyError):
    """The user's strategy code raised an error: while ``signal`` built the graph, or in a
    user lambda or :class:`~qmtl.operator.Operator` during the run. The message names the
    user's ``file:line`` and carries Python's hint; the original error is the ``__cause__``.

    >>> class Typo(Strategy):
    ...     def signal(self, bars):
    ...         return bars.clsoe
    >>> Typo().target()
    Traceback (most recent call last):
    ...
    qmtl.strategy.StrategyCodeError: Typo.signal failed: ...'clsoe'. Did you mean: 'close'?
    """

    @classmethod
    def wrap(
        cls, failed: str, exc: BaseException, frame: FrameSummary | None
    ) -> StrategyCodeError:
        """The error for ``exc``, raised by the user's code at ``frame``; ``failed`` says what
        failed.

        >>> err = StrategyCodeError.wrap("S.signal failed", ZeroDivisionError("division by "
        ...                              "zero"), FrameSummary("s.py", 9, "signal"))
        >>> str(err)
        'S.signal failed at s.py:9 (in signal): ZeroDivisionError: division by zero'
        """
        at = f" at {where(frame)}" if frame is not None else ""
        err = cls(f"{failed}{at}: {exception_line(exc)}")
        err.__cause__ = exc
        return err


class Bars:
    """The bar columns a strategy's ``signal`` reads, as expressions.

    ``bars["SPY"]`` are another symbol's bars (a traded symbol or one in the strategy's
    ``context``), ``bars.at("1d")`` the bars resampled to a coarser interval; both are read
    as of each traded bar's time (the latest bar closed at or before it).

    >>> Bars().close.op, Bars().atr(14).op
    ('col', 'ema')
    >>> Bars()["SPY"].at("1d").close.params
    {'interval': '1d', 'name': 'close', 'symbol': 'SPY'}
    """

    def __init__(self, symbol: str | None = None, interval: str | None = None) -> None:
        self._symbol, self._interval = symbol, interval
        for name in COLUMNS:
            setattr(self, name, col(name, symbol=symbol, interval=interval))

    open: Expr
    high: Expr
    low: Expr
    close: Expr
    volume: Expr

    def __getitem__(self, symbol: str) -> Bars:
        """Another symbol's bars (see the class docstring).

        >>> Bars()[""]
        Traceback (most recent call last):
        ...
        qmtl.strategy.StrategyError: bars[...] needs a symbol name, got ''
        """
        if not isinstance(symbol, str) or not symbol:
            raise StrategyError(f"bars[...] needs a symbol name, got {symbol!r}")
        return Bars(symbol, self._interval)

    def at(self, interval: str) -> Bars:
        """These bars resampled to a coarser ``interval``; a coarse bar is visible from the
        first bar at or after its close (no look-ahead).

        >>> Bars().at("1w")
        Traceback (most recent call last):
        ...
        qmtl.strategy.StrategyError: bars.at: unknown interval '1w': use one of ...
        """
        if interval not in INTERVALS:
            raise StrategyError(f"bars.at: unknown interval {interval!r}: use one of "
                                f"{', '.join(INTERVALS)}")
        return Bars(self._symbol, interval)

    def is_symbol(self, symbol: str) -> Expr:
        """1.0 on the bars of traded symbol ``symbol``, 0.0 on the others' (to give the legs
        of a pair opposite weights: ``where(bars.is_symbol("A"), pos, -pos)``).

        >>> Bars().is_symbol("A").params
        {'symbol': 'A'}
        """
        if not isinstance(symbol, str) or not symbol:
            raise StrategyError(f"bars.is_symbol needs a symbol name, got {symbol!r}")
        return Expr("is_symbol", symbol=symbol)

    def atr(self, n: int = 14) -> Expr:
        """Average true range of these bars (TA-Lib ATR).

        >>> Bars().atr(5).lookback
        5
        """
        return atr(self.high, self.low, self.close, n)


class Strategy:
    """Base class of user strategies (see the module docstring).

    Class attributes: ``symbols`` (the universe), ``interval`` (1m, 5m, 15m, 1h, 4h, 1d),
    ``cost_bps`` (cost per unit of turnover, both sides, in basis points; default 0),
    ``max_gross`` (cap on the sum of absolute weights across symbols; default 1.0),
    ``max_net`` (cap on the absolute sum of the weights, longs minus shorts; default: none),
    ``context`` (symbols read with ``bars["SPY"]`` but not traded) and ``warmup`` (bars of
    history to warm up on; default: inferred from the graph), ``calendar`` (the symbols'
    trading calendar, to annualize on; default: the bars' spacing). How the weights trade:
    ``execution`` (``close`` or ``next_open``), ``spread_bps``, ``slippage_vol``,
    ``vol_window``, ``no_trade_band``, ``min_order_notional``, ``lot_size`` (a number or
    ``{symbol: lot}``) and ``capital`` (see :mod:`dataflows.execution`). Negative weights
    are shorts.
    Every other annotated class attribute with a default is a parameter, overridable as a
    keyword argument or from the CLI with ``-p name=value``.
    """

    symbols: ClassVar[list[str]] = []
    interval: ClassVar[str] = "1d"
    cost_bps: float = 0.0
    max_gross: float = 1.0
    max_net: float = math.inf
    context: ClassVar[list[str]] = []
    warmup: int | None = None
    calendar: str | None = None
    """The symbols' trading calendar (``24/7``, ``weekdays``, ``XNYS``, ...), for the
    annualization; None: the bars' own spacing."""
    execution: str = "close"
    spread_bps: float = 0.0
    slippage_vol: float = 0.0
    vol_window: int = 20
    no_trade_band: float = 0.0
    min_order_notional: float = 0.0
    lot_size: float | dict[str, float] = 0.0
    capital: float = 1_000_000.0

    def __init__(self, **params: Any) -> None:
        known = self.parameters()
        for key, value in params.items():
            if key in RESERVED and key not in ("symbols", "name"):
                setattr(self, key, value)
                continue
            if key not in known:
                names = ", ".join(known) or "(none)"
                raise StrategyError(
                    f"{type(self).__name__} has no parameter {key!r}; parameters: {names}"
                )
            setattr(self, key, coerce_param(type(self), key, value))
        self._check()

    def signal(self, bars: Bars) -> Expr | float | bool:
        """Target weight per symbol per bar, as an expression (override this)."""
        raise NotImplementedError(f"{type(self).__name__} must define signal(self, bars)")

    @property
    def name(self) -> str:
        """The strategy's name: its class name.

        >>> Strategy().name
        'Strategy'
        """
        return type(self).__name__

    @classmethod
    def parameters(cls) -> dict[str, Any]:
        """Parameter names and their current defaults, in declaration order.

        >>> class S(Strategy):
        ...     n: int = 3
        >>> S.parameters()
        {'n': 3}
        """
        out: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            if klass in (Strategy, object):
                continue
            for key in getattr(klass, "__annotations__", {}):
                if key.startswith("_") or key in RESERVED or not hasattr(cls, key):
                    continue
                out[key] = getattr(cls, key)
        return out

    def execution_settings(self) -> Execution:
        """How this strategy's weights are executed (its fee is ``cost_bps``).

        >>> class S(Strategy):
        ...     execution = "next_open"
        ...     spread_bps = 4.0
        >>> S().execution_settings().rule, S(spread_bps=2.0).execution_settings().spread_bps
        ('next_open', 2.0)
        """
        lot = self.lot_size
        try:
            if isinstance(lot, str):  # from the CLI: -p lot_size=100
                lot = float(lot)
            return Execution(rule=self.execution, spread_bps=float(self.spread_bps),  # type: ignore[arg-type]
                             slippage_vol=float(self.slippage_vol),
                             vol_window=int(self.vol_window),
                             no_trade_band=float(self.no_trade_band),
                             min_order_notional=float(self.min_order_notional),
                             lot_size=lot, capital=float(self.capital))
        except (ExecutionError, TypeError, ValueError) as exc:
            raise StrategyError(f"{self.name}: {exc}") from None

    def target(self) -> Expr:
        """The strategy's signal as a target-weight expression (calls ``signal`` once).

        >>> class Flat(Strategy):
        ...     def signal(self, bars):
        ...         return 0.5
        >>> Flat().target().params
        {'value': 0.5}
        """
        try:
            out = self.signal(Bars())
        except QmtlError:
            raise
        except Exception as exc:  # the user's code failed: say where, as Python would
            frame = user_frame(exc, strategy_files(self)) or user_frame(exc)
            raise StrategyCodeError.wrap(f"{self.name}.signal failed", exc, frame) from exc
        if not isinstance(out, (Expr, bool, int, float)):
            raise StrategyError(
                f"{self.name}.signal must return an expression or a number, "
                f"got {type(out).__name__}"
            )
        return as_expr(out)

    def to_spec(self) -> dict[str, Any]:
        """The strategy as data: its graph's nodes and its settings, a versioned JSON-able
        dict that :func:`qmtl.from_spec` turns back into a strategy with the same content
        ids (see ``docs/alphas.md``). Parameters are baked into the graph; a graph with
        Python code in it (``rolling(...).apply``, an :class:`~qmtl.operator.Operator`) has
        no spec.

        >>> class Up(Strategy):
        ...     symbols = ["SPY"]
        ...     def signal(self, bars):
        ...         return bars.close > bars.close.sma(20)
        >>> spec = Up().to_spec()
        >>> spec["qmtl_spec"], spec["name"], [n["op"] for n in spec["nodes"]]
        (1, 'Up', ['col', 'rolling_mean', 'gt'])

        The calendar and the execution settings (:data:`EXECUTION_SETTINGS`) travel with it
        when they differ from the defaults, so a runner or a world trades it as it was tested:

        >>> {k: v for k, v in Up(execution="next_open", spread_bps=2.0).to_spec().items()
        ...  if k in EXECUTION_SETTINGS}
        {'execution': 'next_open', 'spread_bps': 2.0}
        """
        settings = {"name": self.name, "symbols": list(self.symbols),
                    "interval": self.interval, "cost_bps": float(self.cost_bps),
                    "max_gross": float(self.max_gross),
                    "max_net": None if math.isinf(self.max_net) else float(self.max_net),
                    "context": list(self.context), "warmup": self.warmup}
        for key in ("calendar", *EXECUTION_SETTINGS):  # only those set: older specs keep
            value = getattr(self, key)                 # their bytes and content ids
            if value != getattr(Strategy, key):
                settings[key] = dict(value) if isinstance(value, dict) else value
        return strategy_spec(self.target(), settings)

    def _check(self) -> None:
        cls_name = self.name
        if not isinstance(self.symbols, (list, tuple)) or not all(
            isinstance(s, str) and s for s in self.symbols
        ):
            raise StrategyError(f"{cls_name}.symbols must be a list of symbol names")
        if self.interval not in INTERVALS:
            raise StrategyError(
                f"{cls_name}.interval: unknown interval {self.interval!r}: "
                f"use one of {', '.join(INTERVALS)}"
            )
        if not (isinstance(self.cost_bps, (int, float)) and math.isfinite(self.cost_bps)):
            raise StrategyError(f"{cls_name}.cost_bps must be a finite number")
        if self.cost_bps < 0:
            raise StrategyError(f"{cls_name}.cost_bps must be >= 0, got {self.cost_bps}")
        if not (isinstance(self.max_gross, (int, float)) and self.max_gross > 0):
            raise StrategyError(f"{cls_name}.max_gross must be > 0, got {self.max_gross}")
        if not (isinstance(self.max_net, (int, float)) and self.max_net >= 0):
            raise StrategyError(f"{cls_name}.max_net must be >= 0, got {self.max_net}")
        if not isinstance(self.context, (list, tuple)) or not all(
            isinstance(s, str) and s for s in self.context
        ):
            raise StrategyError(f"{cls_name}.context must be a list of symbol names")
        self.execution_settings()


ID_TEXT = re.compile(r"[A-Za-z0-9_.+-]+")
"""Characters a parameter value may have to be spelled out in a strategy id."""


def default_strategy_id(s: Strategy) -> str:
    """The id a strategy is submitted under when none is given: its class name when every
    parameter has its class default; else the class name, ``-`` and the overridden
    parameters as ``name=value`` joined by ``,`` in declaration order; when that would be
    longer than 64 characters or a value has characters other than letters, digits and
    ``_.+-``, the class name, ``-`` and the first 10 hex digits of the SHA-256 of the
    overrides (as sorted JSON). So each parameter set has an id of its own, the same on
    every run, and resubmitting other parameters does not replace an earlier entry.

    >>> class SmaCross(Strategy):
    ...     fast: int = 10
    ...     slow: int = 50
    >>> default_strategy_id(SmaCross()), default_strategy_id(SmaCross(fast="10"))
    ('SmaCross', 'SmaCross')
    >>> default_strategy_id(SmaCross(slow=100, fast=20))
    'SmaCross-fast=20,slow=100'
    >>> class Pick(Strategy):
    ...     name_: str = "a"
    >>> default_strategy_id(Pick(name_="x/y"))
    'Pick-298bdd3c08'
    """
    defaults = type(s).parameters()
    changed = {k: getattr(s, k) for k, v in defaults.items() if getattr(s, k) != v}
    if not changed:
        return s.name
    text = {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in changed.items()}
    readable = f"{s.name}-" + ",".join(f"{k}={v}" for k, v in text.items())
    if len(readable) <= 64 and all(ID_TEXT.fullmatch(v) for v in text.values()):
        return readable
    canonical = json.dumps(changed, sort_keys=True, default=str)
    return f"{s.name}-{hashlib.sha256(canonical.encode()).hexdigest()[:10]}"


def strategy_files(s: Strategy) -> set[str]:
    """The user's source files of the strategy's classes (its class and its user base
    classes; a class defined interactively has none).

    >>> class S(Strategy):
    ...     pass
    >>> strategy_files(S())
    set()
    """
    files = set()
    for klass in type(s).__mro__:
        try:
            name = inspect.getfile(klass)
        except TypeError:  # defined where Python keeps no file (an interactive session)
            continue
        if is_user_file(name):
            files.add(name)
    return files


def coerce_param(cls: type[Strategy], key: str, value: Any) -> Any:
    """Convert ``value`` (often a CLI string) to the declared type of parameter ``key``.

    >>> class S(Strategy):
    ...     n: int = 3
    ...     on: bool = False
    >>> coerce_param(S, "n", "20"), coerce_param(S, "on", "yes")
    (20, True)
    >>> coerce_param(S, "n", "2.5")
    Traceback (most recent call last):
    ...
    qmtl.strategy.StrategyError: parameter 'n' of S expects int, got '2.5'
    """
    try:
        hints = typing.get_type_hints(cls)
    except Exception:  # unresolvable annotations: fall back to the default's type
        hints = {}
    kind = hints.get(key, type(getattr(cls, key, None)))
    if not isinstance(value, str) or kind is str:
        if kind is int and isinstance(value, float) and value.is_integer():
            return int(value)
        return value
    text = value.strip()
    try:
        if kind is bool:
            lowered = text.lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
    except ValueError:
        raise StrategyError(
            f"parameter {key!r} of {cls.__name__} expects {getattr(kind, '__name__', kind)}, "
            f"got {value!r}"
        ) from None
    return value
