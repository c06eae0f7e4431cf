"""``qmtl.alpha(text, ...)``: an alpha expression as a strategy; ``qmtl.alphas([...])`` for
many, and :func:`backtest_alphas` to replay many in one flow, sharing their common nodes.

The alpha's value at each bar becomes target weights across the universe:
``scale(demean(alpha))`` by default (market neutral, sum of |w| = 1);
``scale(group_neutralize(alpha, group))`` when ``groups={symbol: group}`` is given;
``scale(alpha)`` with ``neutralize=None`` (long where the alpha is positive, short where
negative, sum of |w| = 1).

>>> s = alpha("ts_delta(close, 5)", symbols=["A", "B"], neutralize=None)
>>> s.symbols, s.name.startswith("alpha-"), s.alpha
(['A', 'B'], True, 'ts_delta(close, 5)')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from connectors.data.seamless import SeamlessDataProvider
from dataflows.compiler import build_program, run_dataflow
from dataflows.control import RunControl
from dataflows.graph import Program
from qmtl import cs
from qmtl.alpha.functions import Groups, group_levels, to_expr
from qmtl.alpha.spec import GraphStrategy
from qmtl.alpha.sr import pysr_equations, sympy_text
from qmtl.alpha.syntax import AlphaSyntaxError, parse
from qmtl.core.bars import Batch
from qmtl.core.expr import Expr
from qmtl.core.expr_nodes import walk
from qmtl.result import BacktestResult
from qmtl.runner import collect_result, to_spec
from qmtl.sources import BacktestError, DataSource, as_provider, lookback_start, resolve_source
from qmtl.strategy import Strategy, StrategyError

__all__ = ["NEUTRALIZE", "alpha", "alphas", "backtest_alphas", "dedup", "from_pysr",
           "from_sympy", "weights"]

NEUTRALIZE = ("market", "group", None)
"""How an alpha's values become weights: demeaned across the universe (``"market"``),
within groups (``"group"``, needs ``groups``) or not at all (None); then scaled to
sum |w| = 1."""


def weights(value: Expr, neutralize: str | None = "market",
            groups: Groups | None = None) -> Expr:
    """The weight expression of an alpha's value (see the module docstring).

    >>> from qmtl.core.expr import col
    >>> weights(col("close"), "group")
    Traceback (most recent call last):
    ...
    qmtl.strategy.StrategyError: neutralize='group' needs groups={symbol: group}
    """
    if neutralize not in NEUTRALIZE:
        raise StrategyError(f"neutralize must be 'market', 'group' or None, got {neutralize!r}")
    if neutralize == "group" and not groups:
        raise StrategyError("neutralize='group' needs groups={symbol: group}")
    if neutralize == "market":
        value = cs.demean(value)
    elif neutralize == "group":
        value = cs.neutralize(value, dict(groups or {}))
    return cs.scale(value, gross=1.0)


def _check_groups(groups: Groups | None, symbols: Sequence[str]) -> Groups | None:
    """``groups`` checked: a symbol -> group map, or levels by name of such maps (a groups
    file's columns), covering every symbol."""
    if groups is None:
        return None

    def flat(m: object) -> bool:
        return isinstance(m, Mapping) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in m.items())

    levels = isinstance(groups, Mapping) and bool(groups) and all(
        isinstance(k, str) and flat(v) for k, v in groups.items())
    if not (levels or flat(groups)):
        raise StrategyError("groups must map each symbol to its group name: {symbol: group}"
                            " (or levels of such maps: {'sector': {symbol: group}, ...})")
    _, by_level = group_levels(groups)
    for level, mapping in by_level.items():
        missing = [s for s in symbols if s not in mapping]
        if missing:
            where = f" (level {level})" if levels else ""
            raise StrategyError(f"groups has no group for {', '.join(missing)}{where}")
    return groups


def alpha(
    text: str,
    symbols: Sequence[str] = (),
    interval: str = "1d",
    *,
    neutralize: str | None = "market",
    groups: Groups | None = None,
    cost_bps: float = 0.0,
    max_gross: float = 1.0,
    warmup: int | None = None,
    name: str | None = None,
) -> GraphStrategy:
    """A strategy from an alpha expression (the language: ``docs/alphas.md``).

    ``neutralize`` is ``"market"`` (the default; ``"group"`` when ``groups`` is given),
    ``"group"`` or None; ``groups`` maps every symbol to a group name (for
    ``group_neutralize(x, group)`` in the text and for ``neutralize="group"``), or holds
    levels of such maps by name (``{"sector": {...}, "industry": {...}}``, a groups file:
    :func:`qmtl.alpha.groups.levels_from_csv`) for ``indneutralize(x, IndClass.sector)``;
    then the first level is ``group``. The other
    arguments are the strategy's settings. The name defaults to ``alpha-`` and 10 hex digits
    of the weight graph's content id. Errors in the text point at their column.

    >>> alpha("ts_mean(close, 5) - ts_mean(close, 20)", ["A"], neutralize=None).target().op
    'cs_scale'
    >>> alpha("ts_mean(close 5)")
    Traceback (most recent call last):
    ...
    qmtl.alpha.syntax.AlphaSyntaxError: expected ',' or ')', got '5' at column 15
      ts_mean(close 5)
                    ^
    """
    if isinstance(symbols, str):
        raise StrategyError("symbols must be a list of symbol names, not one string")
    universe = list(symbols)
    checked = _check_groups(groups, universe)
    group_map, _ = group_levels(checked)
    if group_map and neutralize == "market":
        neutralize = "group"
    value = to_expr(parse(text), text, checked)
    weight = weights(value, neutralize, group_map)
    return GraphStrategy(weight, name=name, symbols=universe, interval=interval,
                         cost_bps=cost_bps, max_gross=max_gross, warmup=warmup, alpha=text)


def alphas(
    texts: Sequence[str],
    symbols: Sequence[str] = (),
    interval: str = "1d",
    *,
    neutralize: str | None = "market",
    groups: Groups | None = None,
    cost_bps: float = 0.0,
    max_gross: float = 1.0,
) -> list[GraphStrategy]:
    """One strategy per alpha text, with the same settings (see :func:`alpha`); an error
    says which alpha (by its 1-based position) is wrong. Equal alphas are refused: they
    would be one strategy twice.

    >>> [s.alpha for s in alphas(["close", "-close"], ["A"], neutralize=None)]
    ['close', '-close']
    >>> alphas(["close", "clos"], ["A"])
    Traceback (most recent call last):
    ...
    qmtl.alpha.syntax.AlphaSyntaxError: alpha #2: unknown field 'clos' at column 1: did you \
mean 'close'?
      clos
      ^
    """
    if isinstance(texts, str):
        raise StrategyError("alphas takes a list of alpha texts, not one string")
    out: list[GraphStrategy] = []
    seen: dict[str, int] = {}
    for i, text in enumerate(texts, 1):
        try:
            s = alpha(text, symbols, interval, neutralize=neutralize, groups=groups,
                      cost_bps=cost_bps, max_gross=max_gross)
        except AlphaSyntaxError as exc:
            raise AlphaSyntaxError(f"alpha #{i}: {exc.reason}", exc.text, exc.column,
                                   exc.hint) from None
        if s.weight.id in seen:
            raise StrategyError(f"alpha #{i} ({text!r}) gives the same weights as alpha "
                                f"#{seen[s.weight.id]}: remove one")
        seen[s.weight.id] = i
        out.append(s)
    return out


def dedup(strategies: Sequence[Strategy]) -> tuple[int, int]:
    """How many nodes one flow of ``strategies`` evaluates per symbol, against the sum of
    each strategy's own node count: shared sub-expressions are evaluated once.

    >>> dedup(alphas(["ts_mean(close, 5)", "-ts_mean(close, 5)"], ["A"], neutralize=None))
    (5, 7)
    """
    program = Program({f"s{i}": s.target() for i, s in enumerate(strategies)})
    total = sum(len(list(walk([s.target()]))) for s in strategies)
    return len(program.nodes), total


def backtest_alphas(
    strategies: Sequence[Strategy],
    data: DataSource,
    *,
    symbols: Sequence[str] | None = None,
    start: int | None = None,
    end: int | None = None,
    batch_size: int = 10_000,
    workers: int = 1,
) -> list[BacktestResult]:
    """Replay many strategies (of one interval) in one flow: every node they share is
    evaluated once per symbol and bar time. Each result equals that strategy's own
    :func:`qmtl.backtest` (same data, no ``start`` look-back: ``start`` and ``end`` are ns).

    >>> from connectors.data.synthetic import generate_bars
    >>> data = {s: generate_bars(60, seed=i) for i, s in enumerate("AB")}
    >>> res = backtest_alphas(alphas(["ts_delta(close, 5)", "-returns"], ["A", "B"]), data)
    >>> [len(r.returns) for r in res]
    [60, 60]
    """
    if not strategies:
        raise BacktestError("backtest_alphas needs at least one strategy")
    intervals = {s.interval for s in strategies}
    if len(intervals) > 1:
        raise BacktestError(f"strategies of one flow share an interval, got {sorted(intervals)}")
    interval = intervals.pop()
    names = [s.name for s in strategies]
    if len(set(names)) != len(names):
        raise BacktestError("strategy names must differ within one flow")
    universe = list(symbols) if symbols is not None else sorted(
        {sym for s in strategies for sym in s.symbols})
    if not universe:
        raise BacktestError("no symbols: give symbols= or strategies with symbols")
    specs = [to_spec(s, list(symbols) if symbols is not None else list(s.symbols) or universe,
                     None) for s in strategies]
    source: SeamlessDataProvider | Mapping[str, Batch]
    source = data if isinstance(data, Mapping) else as_provider(data)
    lookback = max(s.warmup if s.warmup is not None else build_program([sp]).lookback
                   for s, sp in zip(strategies, specs, strict=True))
    read_from = start
    if start is not None and lookback > 0:
        read_from = lookback_start(source, universe, interval, start, lookback)
    make_items, _ = resolve_source(source, universe, interval, read_from, end, batch_size)
    outputs = run_dataflow(specs, make_items, workers=workers, control=RunControl(),
                           signals_from=start if read_from != start else None)
    results = []
    for s, sp in zip(strategies, specs, strict=True):
        mine = [o for o in outputs if o.strategy == sp.key]
        results.append(collect_result(s, sp.symbols, mine))
    return results


def from_sympy(expr: object, variables: Mapping[str, str], symbols: Sequence[str] = (),
               interval: str = "1d", **options: object) -> GraphStrategy:
    """An alpha from a sympy expression (as symbolic regression gives it), its symbols
    mapped to fields or alpha text by ``variables``; the other arguments as for
    :func:`alpha`. Also ``qmtl.alpha.from_sympy``.

    >>> import sympy
    >>> x0, x1 = sympy.symbols("x0 x1")
    >>> s = from_sympy(sympy.sin(x0) * x1 - 2.5, {"x0": "close", "x1": "volume"}, ["A"])
    >>> s.alpha, s.weight.id == alpha("volume * sin(close) - 2.5", ["A"]).weight.id
    ('volume * sin(close) - 2.5', True)
    """
    return alpha(sympy_text(expr, variables), symbols, interval, **options)  # type: ignore[arg-type]


def from_pysr(path: str, variables: Mapping[str, str], symbols: Sequence[str] = (),
              interval: str = "1d", *, top: int | None = None,
              **options: object) -> list[GraphStrategy]:
    """One alpha per equation of a PySR hall-of-fame CSV (lowest loss first; the ``top``
    first), its variables mapped by ``variables``; equal equations once. Also
    ``qmtl.alpha.from_pysr``.

    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "hof.csv")
    >>> _ = open(p, "w").write("Complexity,Loss,Equation\\n3,0.4,square(x0)\\n1,0.9,x0\\n")
    >>> [s.alpha for s in from_pysr(p, {"x0": "returns"}, ["A"], top=1)]
    ['square(returns)']
    """
    out: list[GraphStrategy] = []
    seen: set[str] = set()
    for eq in pysr_equations(path, variables, top):
        try:
            s = alpha(eq.text, symbols, interval, **options)  # type: ignore[arg-type]
        except AlphaSyntaxError as exc:
            raise AlphaSyntaxError(f"{path}:{eq.line}: {exc.reason}", exc.text, exc.column,
                                   exc.hint) from None
        if s.weight.id not in seen:
            seen.add(s.weight.id)
            out.append(s)
    return out


alpha.from_sympy = from_sympy  # type: ignore[attr-defined]
alpha.from_pysr = from_pysr  # type: ignore[attr-defined]
