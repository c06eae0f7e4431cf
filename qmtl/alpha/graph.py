"""An expression graph as JSON nodes and back: the data half of a strategy spec.

Each node is ``{"id", "op", "params", "inputs"}``, inputs before the nodes that use them;
``id`` is the node's content id when QMTL writes it (a hand-written spec may use any names:
ids are only references between nodes, and the rebuilt graph gets its content ids anew, so a
round trip gives the same ids). Floats that JSON cannot hold (NaN, infinities) are written
``{"$float": "nan"}``.

>>> from qmtl.core.expr import col
>>> e = col("close").sma(5) > col("close")
>>> nodes = graph_nodes(e)
>>> [n["op"] for n in nodes], nodes[1]["params"]
(['col', 'rolling_mean', 'gt'], {'n': 5})
>>> build_graph(nodes, e.id).id == e.id
True
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from qmtl.core.errors import QmtlError
from qmtl.core.expr import COLUMNS, Expr, col
from qmtl.core.expr_nodes import walk

__all__ = ["CODE_OPS", "SPEC_VERSION", "SpecError", "build_graph", "decode", "encode",
           "graph_nodes", "strategy_spec"]

SPEC_VERSION = 1
"""The version of the spec format this QMTL writes and reads (``"qmtl_spec": 1``)."""

CODE_OPS = frozenset({"rolling_apply", "custom"})
"""Operators that hold Python code (a function, an Operator class): not expressible as data."""


class SpecError(QmtlError, ValueError):
    """A strategy spec is malformed, or a graph cannot be written as one (the message names
    the node).

    >>> str(SpecError("node 'x': unknown operator 'smaa'"))
    "node 'x': unknown operator 'smaa'"
    """


def encode(value: Any) -> Any:
    """A parameter value as JSON data (non-finite floats tagged, tuples as lists).

    >>> encode([1, 2.5, float("nan")])
    [1, 2.5, {'$float': 'nan'}]
    """
    if isinstance(value, float) and not math.isfinite(value):
        return {"$float": repr(value)}
    if isinstance(value, (list, tuple)):
        return [encode(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): encode(v) for k, v in value.items()}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"a {type(value).__name__} parameter cannot be written as data")


def decode(value: Any) -> Any:
    """The inverse of :func:`encode`.

    >>> decode({"$float": "-inf"}), decode({"a": [1]})
    (-inf, {'a': [1]})
    """
    if isinstance(value, Mapping):
        if set(value) == {"$float"}:
            return float(value["$float"])
        return {str(k): decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def graph_nodes(output: Expr) -> list[dict[str, Any]]:
    """The nodes of the graph of ``output`` as JSON data, inputs first.

    >>> from qmtl.core.expr import col
    >>> graph_nodes(col("close").rolling(2).apply(max))
    Traceback (most recent call last):
    ...
    qmtl.alpha.graph.SpecError: node ... (rolling_apply) holds Python code (a function or an \
Operator class): a spec holds only built-in operators
    """
    out = []
    for node in walk([output]):
        if node.op in CODE_OPS:
            raise SpecError(
                f"node {node.id} ({node.op}) holds Python code (a function or an Operator "
                "class): a spec holds only built-in operators"
            )
        try:
            params = encode(node.params)
        except TypeError as exc:
            raise SpecError(f"node {node.id} ({node.op}): {exc}") from None
        out.append({"id": node.id, "op": node.op, "params": params,
                    "inputs": [i.id for i in node.inputs]})
    return out


def strategy_spec(output: Expr, settings: Mapping[str, Any]) -> dict[str, Any]:
    """A whole spec: the version, the settings, the output node and the nodes.

    >>> from qmtl.core.expr import col
    >>> spec = strategy_spec(col("close") > 0, {"name": "s"})
    >>> sorted(spec)
    ['name', 'nodes', 'output', 'qmtl_spec']
    """
    return {"qmtl_spec": SPEC_VERSION, **settings, "output": output.id,
            "nodes": graph_nodes(output)}


def _node_name(raw: Any, index: int) -> str:
    if isinstance(raw, Mapping) and isinstance(raw.get("id"), str):
        return repr(raw["id"])
    return f"#{index}"


def build_graph(
    nodes: Sequence[Any],
    output: Any,
    known_ops: frozenset[str] | set[str] | None = None,
    check: Callable[[str, dict[str, Any]], None] | None = None,
) -> Expr:
    """The expression of node ``output`` of ``nodes`` (see the module docstring). A node with
    an unknown operator (not in ``known_ops``, when given), parameters ``check(op, params)``
    refuses with a ValueError, a missing input, a cycle or a malformed field is refused with
    an error naming the node.

    >>> nodes = [{"id": "a", "op": "add", "params": {}, "inputs": ["b", "c"]},
    ...          {"id": "b", "op": "col", "params": {"name": "close"}, "inputs": []},
    ...          {"id": "c", "op": "neg", "params": {}, "inputs": ["a"]}]
    >>> build_graph(nodes, "a")
    Traceback (most recent call last):
    ...
    qmtl.alpha.graph.SpecError: node 'a' is on a cycle: 'a' -> 'c' -> 'a'
    """
    if not isinstance(nodes, Sequence) or isinstance(nodes, (str, bytes)):
        raise SpecError("'nodes' must be a list of nodes")
    by_id: dict[str, Mapping[str, Any]] = {}
    for index, raw in enumerate(nodes):
        name = _node_name(raw, index)
        if not isinstance(raw, Mapping):
            raise SpecError(f"node {name} must be an object, got {type(raw).__name__}")
        extra = set(raw) - {"id", "op", "params", "inputs"}
        if extra:
            raise SpecError(f"node {name} has unknown fields: {', '.join(sorted(extra))} "
                            "(a node has id, op, params and inputs)")
        if not isinstance(raw.get("id"), str) or not raw["id"]:
            raise SpecError(f"node {name} needs an 'id' (a string)")
        if not isinstance(raw.get("op"), str):
            raise SpecError(f"node {name} needs an 'op' (a string)")
        if not isinstance(raw.get("params", {}), Mapping):
            raise SpecError(f"node {name}: 'params' must be an object")
        inputs = raw.get("inputs", [])
        if not isinstance(inputs, list) or not all(isinstance(i, str) for i in inputs):
            raise SpecError(f"node {name}: 'inputs' must be a list of node ids")
        if raw["id"] in by_id:
            raise SpecError(f"node {name} is defined twice")
        if known_ops is not None and raw["op"] not in known_ops:
            raise SpecError(f"node {name}: unknown operator {raw['op']!r}"
                            + _suggest(raw["op"], known_ops))
        by_id[raw["id"]] = raw
    if not isinstance(output, str) or output not in by_id:
        raise SpecError(f"'output' must be the id of a node of the spec, got {output!r}")
    built: dict[str, Expr] = {}
    path: list[str] = []
    on_path: set[str] = set()

    def build(nid: str) -> Expr:  # depth first, inputs before their users
        done = built.get(nid)
        if done is not None:
            return done
        if nid in on_path:
            loop = [*path[path.index(nid):], nid]
            raise SpecError(f"node {nid!r} is on a cycle: {' -> '.join(map(repr, loop))}")
        raw = by_id[nid]
        path.append(nid)
        on_path.add(nid)
        inputs = []
        for i in raw.get("inputs", []):
            if i not in by_id:
                raise SpecError(f"node {nid!r}: input {i!r} is not a node of the spec")
            inputs.append(build(i))
        path.pop()
        on_path.discard(nid)
        params = decode(dict(raw.get("params", {})))
        if check is not None:
            try:
                check(raw["op"], params)
            except ValueError as exc:
                raise SpecError(f"node {nid!r}: {exc}") from None
        built[nid] = _make(nid, raw["op"], params, inputs)
        return built[nid]

    try:
        return build(output)
    except RecursionError:
        raise SpecError("the graph is too deep to read: a chain of more than several "
                        "hundred nodes") from None


def _suggest(op: str, known: frozenset[str] | set[str]) -> str:
    close = difflib.get_close_matches(op, sorted(known), n=1)
    return f": did you mean {close[0]!r}?" if close else ""


def _make(nid: str, op: str, params: dict[str, Any], inputs: list[Expr]) -> Expr:
    if op == "col":
        if inputs:
            raise SpecError(f"node {nid!r} (col) has no inputs")
        try:
            return col(**params)
        except (TypeError, ValueError) as exc:
            raise SpecError(f"node {nid!r} (col): params must be {{'name': one of "
                            f"{', '.join(COLUMNS)}}} (and a symbol or an interval of other "
                            f"bars): {exc}") from None
    if op == "const":
        value = params.get("value")
        if set(params) != {"value"} or isinstance(value, bool) \
                or not isinstance(value, (int, float)) or inputs:
            raise SpecError(f"node {nid!r} (const): params must be {{'value': a number}} "
                            "and it has no inputs")
        params = {"value": float(value)}
    return Expr(op, *inputs, **params)
