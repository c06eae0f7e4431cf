"""A strategy as data: the versioned JSON spec, and the strategy a graph defines.

``Strategy.to_spec()`` writes a spec; :func:`from_spec` reads one (a dict, JSON text or a
file) into a :class:`GraphStrategy` that runs wherever a strategy does (``qmtl.backtest``,
``Runner``, ``submit``, the CLI's ``--spec``). The format (version 1)::

    {"qmtl_spec": 1, "name": "...", "symbols": [...], "interval": "1d", "cost_bps": 0.0,
     "max_gross": 1.0, "max_net": null, "context": [], "warmup": null,
     "alpha": "text (optional, for people)",
     "output": "<id of the weight node>", "nodes": [{"id", "op", "params", "inputs"}, ...]}

>>> from qmtl import Strategy
>>> class Up(Strategy):
...     symbols = ["SPY"]
...     def signal(self, bars):
...         return bars.close > bars.close.sma(20)
>>> back = from_spec(Up().to_spec())
>>> back.name, back.symbols, back.target().id == Up().target().id
('Up', ['SPY'], True)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dataflows.kernels import KERNELS
from dataflows.kernels.cross_section import PANEL_OPS
from qmtl import cs
from qmtl.alpha.graph import CODE_OPS, SPEC_VERSION, SpecError, build_graph
from qmtl.core.expr import Expr, lit
from qmtl.strategy import EXECUTION_SETTINGS, Bars, Strategy, StrategyError

__all__ = ["SETTINGS", "GraphStrategy", "SpecError", "check_params", "from_spec", "known_ops",
           "read_spec"]

SETTINGS = ("name", "symbols", "interval", "cost_bps", "max_gross", "max_net", "context",
            "warmup", "alpha", "calendar", *EXECUTION_SETTINGS)
"""The strategy settings a spec may carry besides its graph."""


def known_ops() -> frozenset[str]:
    """Every operator a spec may name: the engine's kernels and the bar columns and
    constants, minus the operators that hold Python code.

    >>> {"col", "const", "rolling_mean", "ts_rank"} <= known_ops(), "custom" in known_ops()
    (True, False)
    """
    ops = {op for op in KERNELS if not op.startswith("_")} - CODE_OPS
    return frozenset(ops | set(PANEL_OPS) | {"col", "const", "is_symbol"})


class GraphStrategy(Strategy):
    """A strategy defined by a fixed expression graph: an alpha's text or a spec. It has no
    parameters (they are in the graph); its name defaults to ``alpha-`` and the first 10
    hex digits of its weight node's content id.

    >>> from qmtl.core.expr import col
    >>> s = GraphStrategy(col("close") > 0, symbols=["A"])
    >>> s.name.startswith("alpha-"), s.symbols, s.target().op
    (True, ['A'], 'gt')
    >>> GraphStrategy(col("close"), fast=3)
    Traceback (most recent call last):
    ...
    qmtl.strategy.StrategyError: a graph strategy has no parameters (they are in its graph), \
got fast
    """

    def __init__(
        self,
        weight: Expr | None = None,
        *,
        name: str | None = None,
        symbols: Sequence[str] = (),
        interval: str = "1d",
        cost_bps: float = 0.0,
        max_gross: float = 1.0,
        max_net: float | None = None,
        context: Sequence[str] = (),
        warmup: int | None = None,
        alpha: str | None = None,
        **params: Any,
    ) -> None:
        execution = {k: params.pop(k) for k in ("calendar", *EXECUTION_SETTINGS) if k in params}
        if params:
            raise StrategyError(f"a graph strategy has no parameters (they are in its graph), "
                                f"got {', '.join(params)}")
        if not isinstance(weight, Expr):
            raise StrategyError(f"a graph strategy needs an expression, got {weight!r}")
        if name is not None and not (isinstance(name, str) and name.strip()):
            raise StrategyError(f"a strategy name must be non-empty text, got {name!r}")
        if isinstance(symbols, str):
            raise StrategyError("symbols must be a list of symbol names, not one string")
        self.weight = weight
        self.alpha = alpha
        self._name = name or f"alpha-{weight.id[:10]}"
        if isinstance(context, str):
            raise StrategyError("context must be a list of symbol names, not one string")
        self.symbols = list(symbols)  # type: ignore[misc]
        self.context = list(context)  # type: ignore[misc]
        if warmup is not None and (isinstance(warmup, bool) or not isinstance(warmup, int)
                                   or warmup < 0):
            raise StrategyError(f"warmup must be a whole number >= 0, got {warmup!r}")
        super().__init__(interval=interval, cost_bps=cost_bps, max_gross=max_gross,
                         max_net=math.inf if max_net is None else max_net, warmup=warmup,
                         **execution)

    @property
    def name(self) -> str:
        """The strategy's name (see the class docstring).

        >>> from qmtl.core.expr import lit
        >>> GraphStrategy(lit(1.0), name="flat").name
        'flat'
        """
        return self._name

    def signal(self, bars: Bars) -> Expr:
        """The graph's weight expression.

        >>> from qmtl.core.expr import lit
        >>> GraphStrategy(lit(0.5)).signal(Bars()).params
        {'value': 0.5}
        """
        return self.weight

    def to_spec(self) -> dict[str, Any]:
        """The spec, with the alpha's text when the strategy came from one.

        >>> from qmtl.core.expr import lit
        >>> GraphStrategy(lit(1.0), alpha="1").to_spec()["alpha"]
        '1'
        """
        spec = super().to_spec()
        if self.alpha is not None:
            spec = {**spec, "alpha": self.alpha}
            spec["nodes"] = spec.pop("nodes")  # the nodes last, for people reading it
            spec["output"] = spec.pop("output")
        return spec


def read_spec(source: Mapping[str, Any] | str | Path) -> dict[str, Any]:
    """A spec as a dict, from a dict, JSON text or a JSON file.

    >>> read_spec('{"qmtl_spec": 1}')
    {'qmtl_spec': 1}
    >>> read_spec('{"qmtl_spec": }')
    Traceback (most recent call last):
    ...
    qmtl.alpha.graph.SpecError: spec is not valid JSON: Expecting value: line 1 column 15 (char 14)
    """
    where = "spec"
    if isinstance(source, Mapping):
        return dict(source)
    if isinstance(source, Path) or (isinstance(source, str)
                                    and not source.lstrip().startswith("{")):
        path = Path(source)
        where = f"spec file {path}"
        text = path.read_text()
    elif isinstance(source, str):
        text = source
    else:
        raise SpecError(f"a spec is a dict, JSON text or a file, got {type(source).__name__}")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"{where} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{where} must hold a JSON object, got {type(data).__name__}")
    return data


def from_spec(source: Mapping[str, Any] | str | Path) -> GraphStrategy:
    """The strategy a spec describes (see the module docstring). A spec of another version,
    an unknown setting, an unknown operator, a cycle or a bad node is refused, naming it.

    >>> from_spec({"qmtl_spec": 1, "output": "w", "nodes": [
    ...     {"id": "w", "op": "smaa", "params": {"n": 5}, "inputs": []}]})
    Traceback (most recent call last):
    ...
    qmtl.alpha.graph.SpecError: node 'w': unknown operator 'smaa'
    >>> from_spec({"qmtl_spec": 2})
    Traceback (most recent call last):
    ...
    qmtl.alpha.graph.SpecError: spec version 2 is not supported: this QMTL reads version 1
    """
    spec = read_spec(source)
    if "qmtl_spec" not in spec:
        raise SpecError("not a QMTL spec: it has no 'qmtl_spec' version field")
    if spec["qmtl_spec"] != SPEC_VERSION:
        raise SpecError(f"spec version {spec['qmtl_spec']!r} is not supported: this QMTL "
                        f"reads version {SPEC_VERSION}")
    unknown = set(spec) - {"qmtl_spec", "output", "nodes", *SETTINGS}
    if unknown:
        raise SpecError(f"unknown spec fields: {', '.join(sorted(unknown))} (a spec has "
                        f"qmtl_spec, {', '.join(SETTINGS)}, output and nodes)")
    if "nodes" not in spec or "output" not in spec:
        raise SpecError("a spec needs 'nodes' and 'output' (the id of the weight node)")
    weight = build_graph(spec["nodes"], spec["output"], known_ops(), check_params)
    settings = {k: spec[k] for k in SETTINGS if k in spec and spec[k] is not None}
    try:
        return GraphStrategy(weight, **settings)
    except (StrategyError, TypeError) as exc:
        raise SpecError(f"spec settings: {exc}") from None


def check_params(op: str, params: dict[str, Any]) -> None:
    """Build the kernel of ``op`` once, so a bad parameter is refused before the run.

    >>> check_params("rolling_mean", {"n": 0})
    Traceback (most recent call last):
    ...
    ValueError: rolling_mean: n must be a positive integer, got 0
    """
    try:
        if op in KERNELS:
            KERNELS[op](**params)
        elif op in PANEL_OPS:  # the cs builder checks the parameters
            getattr(cs, op.removeprefix("cs_"))(lit(0.0), **params)
        elif op == "is_symbol" and (set(params) != {"symbol"} or not isinstance(
                params["symbol"], str) or not params["symbol"]):
            raise ValueError("is_symbol: params must be {'symbol': a symbol name}")
    except TypeError as exc:
        raise ValueError(f"{op}: bad parameters {sorted(params)}: {exc}") from None
