"""What identifies an expression node and what it needs: content ids from canonical
parameters, the warm-up each operator adds, window validation, and the walk over a graph.

Nothing here knows the :class:`~qmtl.core.expr.Expr` class: a node is anything with an
``id`` and ``inputs`` (see :class:`Node`), so the expression module builds on this one.

>>> content_id("rolling_mean", {"n": 3}, ["abc"]) == content_id("rolling_mean", {"n": 3}, ["abc"])
True
>>> own_lookback("rolling_mean", {"n": 3}), own_lookback("add", {})
(2, 0)
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, Self, TypeVar

import numpy as np

OWN_LOOKBACK: dict[str, Callable[[dict[str, Any]], int]] = {
    "shift": lambda p: int(p["n"]),
    "rolling_sum": lambda p: int(p["n"]) - 1,
    "rolling_mean": lambda p: int(p["n"]) - 1,
    "rolling_var": lambda p: int(p["n"]) - 1,
    "rolling_min": lambda p: int(p["n"]) - 1,
    "rolling_max": lambda p: int(p["n"]) - 1,
    "wma": lambda p: int(p["n"]) - 1,
    "ema": lambda p: int(p["n"]) - 1,
    "rolling_apply": lambda p: int(p["n"]) - 1,
    "custom": lambda p: int(p.get("lookback", 0)),
    # the alpha language's window operators (qmtl.core.expr_ts)
    "ts_rank": lambda p: int(p["n"]) - 1,
    "ts_cov": lambda p: int(p["n"]) - 1,
    "ts_corr": lambda p: int(p["n"]) - 1,
    "ts_argmax": lambda p: int(p["n"]) - 1,
    "ts_argmin": lambda p: int(p["n"]) - 1,
    "ts_product": lambda p: int(p["n"]) - 1,
}
"""Warm-up each stateful operator adds on top of its input's (bars before a defined value),
from its parameters."""


class Node(Protocol):
    """What :func:`walk` needs of a node: a content id and its input nodes.

    >>> from qmtl.core.expr import col
    >>> isinstance(col("close").id, str), col("close").inputs
    (True, ())
    """

    @property
    def id(self) -> str:
        """The node's content id."""
        ...

    @property
    def inputs(self) -> Sequence[Self]:
        """The nodes it is computed from."""
        ...


N = TypeVar("N", bound=Node)


def canonical(value: Any) -> Any:
    """A JSON-able, stable form of a parameter value (for content ids): floats by ``repr``
    (exact, and telling nan and inf apart), a function by its name and a hash of its source.

    >>> canonical({"b": 0.1, "a": [1, (2, 3)]})
    {'a': [1, [2, 3]], 'b': '0.1'}
    >>> canonical(len)
    'callable:builtins.len:'
    """
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return repr(value)  # exact, and distinguishes nan/inf
    if isinstance(value, (list, tuple)):
        return [canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in sorted(value.items())}
    if callable(value):
        name = f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"
        try:
            source = inspect.getsource(value)
        except (OSError, TypeError):
            source = ""
        digest = hashlib.sha256(source.encode()).hexdigest()[:16] if source else ""
        return f"callable:{name}:{digest}"
    return repr(value)


def content_id(op: str, params: dict[str, Any], input_ids: Iterable[str]) -> str:
    """A node's id: a hash of its operator, canonical parameters and its inputs' ids.

    >>> len(content_id("col", {"name": "close"}, []))
    20
    >>> content_id("shift", {"n": 1}, ["x"]) != content_id("shift", {"n": 2}, ["x"])
    True
    """
    payload = json.dumps([op, canonical(params), list(input_ids)], sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def own_lookback(op: str, params: dict[str, Any]) -> int:
    """Bars operator ``op`` needs before its first defined value, on top of its inputs'.

    >>> own_lookback("shift", {"n": 2}), own_lookback("custom", {})
    (2, 0)
    """
    own = OWN_LOOKBACK.get(op)
    return own(params) if own else 0


def positive_window(name: str, n: Any) -> int:
    """``n`` as a window length, or a ValueError naming the operator ``name``.

    >>> positive_window("sma", 3)
    3
    >>> positive_window("sma", 0)
    Traceback (most recent call last):
    ...
    ValueError: sma: window must be a positive integer, got 0
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{name}: window must be a positive integer, got {n!r}")
    return int(n)


def walk(outputs: Iterable[N]) -> Iterator[N]:
    """Every distinct node reachable from ``outputs``, each once, inputs before users.

    >>> from qmtl.core.expr import col
    >>> c = col("close")
    >>> [n.op for n in walk([c.sma(3) - c.sma(3), c])]
    ['col', 'rolling_mean', 'sub']
    """
    seen: set[str] = set()
    stack: list[tuple[N, bool]] = [(e, False) for e in reversed(list(outputs))]
    while stack:
        node, expanded = stack.pop()
        if node.id in seen:
            continue
        if expanded:
            seen.add(node.id)
            yield node
            continue
        stack.append((node, True))
        stack.extend((i, False) for i in reversed(node.inputs) if i.id not in seen)
