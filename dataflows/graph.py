"""A compiled strategy graph and its per-symbol evaluator.

:class:`Program` is the pure, shareable part: every distinct node reachable from the named
outputs, in dependency order, so a node shared by several outputs (or several strategies) is
evaluated once. :class:`ProgramState` is one symbol's evaluator: a kernel per node carrying
that node's state from batch to batch.

>>> import numpy as np
>>> from qmtl.core.expr import col
>>> c = col("close")
>>> prog = Program({"a": c.sma(2) > c.sma(3), "b": c.sma(2)})
>>> [n.op for n in prog.nodes]
['col', 'rolling_mean', 'rolling_mean', 'gt']
>>> state = ProgramState(prog)
>>> out = state.evaluate({"close": np.array([1.0, 2.0, 3.0, 2.0])})
>>> out["b"].tolist()
[nan, 1.5, 2.5, 2.5]
>>> out["a"].tolist()
[0.0, 0.0, 1.0, 1.0]
"""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from dataflows.kernels import Kernel, make_kernel, register
from qmtl.core.expr import Expr
from qmtl.core.expr_nodes import walk


@register("custom")
class CustomKernel(Kernel):
    """Runs a user operator (a :class:`qmtl.operator.Operator`: any class with an ``update``
    of the input arrays), checking the shape of what it returns.

    >>> class Twice:
    ...     def update(self, x):
    ...         return 2 * x
    >>> CustomKernel(cls=Twice, args=[], kwargs={}, lookback=0).update(np.ones(2))
    array([2., 2.])
    """

    def __init__(self, cls: type, args: list[Any], kwargs: dict[str, Any], lookback: int) -> None:
        self.name = cls.__name__
        self.instance = cls(*args, **kwargs)

    def update(self, *inputs: np.ndarray) -> np.ndarray:
        out = np.asarray(self.instance.update(*inputs), dtype=np.float64)
        n = len(inputs[0]) if inputs else 0
        if out.shape != (n,):
            raise ValueError(
                f"operator {self.name}.update returned shape {out.shape} for a batch of {n}; "
                f"it must return one value per input element"
            )
        return out


_BROADCAST_OPS = frozenset({"add", "sub", "mul", "div", "maximum", "minimum", "lt", "le", "gt",
                            "ge", "eq", "ne", "and", "or", "where"})
"""Element-wise kernels that give the same bits for a number as for an array filled with it
(IEEE operations element by element; ``pow`` is not here: numpy may take a scalar exponent's
fast path)."""


def _scalar_consts(nodes: list[Expr], outputs: Iterable[Expr]) -> frozenset[str]:
    """Ids of the constants that every consumer takes as a number: no output, and each
    consumer an element-wise kernel with an input that is not a constant (an array, so its
    output is an array too). The rest are filled to the batch's length.

    >>> from qmtl.core.expr import col
    >>> nodes = list(walk([col("close") > 30.0]))
    >>> [n.params["value"] for n in nodes if n.id in _scalar_consts(nodes, [])]
    [30.0]
    """
    ok = {n.id for n in nodes if n.op == "const"} - {e.id for e in outputs}
    for node in nodes:
        takes = [i.id for i in node.inputs if i.id in ok]
        if not takes:
            continue
        if node.op not in _BROADCAST_OPS or all(i.op == "const" for i in node.inputs):
            ok -= set(takes)
    return frozenset(ok)


class Program:
    """The distinct nodes of named output expressions, in dependency order.

    >>> from qmtl.core.expr import col
    >>> Program({"w": col("close").ema(5) > 0}).lookback
    4
    """

    def __init__(self, outputs: Mapping[str, Expr]) -> None:
        self.outputs: dict[str, Expr] = dict(outputs)
        self.nodes: list[Expr] = list(walk(self.outputs.values()))
        self.lookback: int = max((e.lookback for e in self.outputs.values()), default=0)
        self.columns: tuple[str, ...] = tuple(
            sorted({n.params["name"] for n in self.nodes if n.op == "col"})
        )
        self.scalars: frozenset[str] = _scalar_consts(self.nodes, self.outputs.values())
        """Constants passed to their kernels as numbers, not filled arrays (see
        :func:`_scalar_consts`)."""

    @property
    def node_ids(self) -> list[str]:
        """Content ids of the nodes, in evaluation order.

        >>> from qmtl.core.expr import col
        >>> len(Program({"x": col("close")}).node_ids)
        1
        """
        return [n.id for n in self.nodes]


class ProgramState:
    """One symbol's evaluator of a :class:`Program`: one kernel per stateful node.

    ``kernel_calls`` counts kernel updates, so tests can see shared nodes computed once.

    >>> from qmtl.core.expr import col
    >>> st = ProgramState(Program({"x": col("close").shift(1)}))
    >>> st.evaluate({"close": np.array([1.0, 2.0])})["x"].tolist()
    [nan, 1.0]
    >>> st.evaluate({"close": np.array([3.0])})["x"].tolist()
    [2.0]
    """

    def __init__(self, program: Program) -> None:
        self.program = program
        self.kernels: dict[str, Kernel] = {}
        for node in program.nodes:
            if node.op not in ("col", "const"):
                self.kernels[node.id] = make_kernel(node.op, node.params)
        self.kernel_calls = 0

    # -- recovery: state without configuration ----------------------------------------------
    # A snapshot (Bytewax deep-copies and pickles step state) keeps each kernel's carried
    # state but not the program or what a kernel was configured with (functions, classes:
    # a user's lambda does not pickle); :meth:`attach` rebuilds those from the program.
    def __getstate__(self) -> dict[str, Any]:
        if not self.attached:  # restored and not attached yet: pass the carried state on
            return {"kernels": self._restored, "kernel_calls": self.kernel_calls}
        return {
            "kernels": {nid: _carried_state(k) for nid, k in self.kernels.items()},
            "kernel_calls": self.kernel_calls,
        }

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.program = None  # type: ignore[assignment]
        self.kernels = {}
        self._restored = state["kernels"]
        self.kernel_calls = state["kernel_calls"]

    @property
    def attached(self) -> bool:
        """False for a state restored from a snapshot until :meth:`attach` is called.

        >>> import pickle
        >>> from qmtl.core.expr import col
        >>> st = ProgramState(Program({"x": col("close").sma(2)}))
        >>> st.attached, pickle.loads(pickle.dumps(st)).attached
        (True, False)
        """
        return self.program is not None

    def attach(self, program: Program) -> None:
        """Give a restored state its program back: fresh kernels, then the carried state.

        >>> import copy, pickle
        >>> from qmtl.core.expr import col
        >>> prog = Program({"x": col("close").rolling(2).apply(lambda w: w[1] - w[0])})
        >>> st = ProgramState(prog)
        >>> _ = st.evaluate({"close": np.array([1.0, 3.0])})
        >>> back = pickle.loads(pickle.dumps(copy.deepcopy(st)))
        >>> back.attach(prog)
        >>> back.evaluate({"close": np.array([7.0])})["x"].tolist()
        [4.0]
        """
        fresh = ProgramState(program)
        for nid, carried in getattr(self, "_restored", {}).items():
            kernel = fresh.kernels.get(nid)
            if kernel is None:
                raise ValueError(
                    f"recovery state has node {nid} that the program does not: the strategy "
                    "changed since the snapshot; start with a new recovery directory"
                )
            for name, value in carried.items():
                setattr(kernel, name, value)
        self.program, self.kernels = program, fresh.kernels
        self.__dict__.pop("_restored", None)

    def evaluate(self, batch: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Evaluate every node over ``batch`` (column name -> array); return the outputs.

        >>> from qmtl.core.expr import col
        >>> st = ProgramState(Program({"d": col("close").diff()}))
        >>> st.evaluate({"close": np.array([1.0, 4.0])})["d"].tolist()
        [nan, 3.0]
        """
        values: dict[str, Any] = {}
        n = len(next(iter(batch.values()))) if batch else 0
        scalars = self.program.scalars
        for node in self.program.nodes:
            if node.op == "col":
                values[node.id] = np.asarray(batch[node.params["name"]], dtype=np.float64)
            elif node.op == "const":
                value = np.float64(node.params["value"])
                values[node.id] = value if node.id in scalars else np.full(n, value)
            else:
                args = [values[i.id] for i in node.inputs]
                values[node.id] = self.kernels[node.id].update(*args)
                self.kernel_calls += 1
        return {name: values[e.id] for name, e in self.program.outputs.items()}


_CONFIG_TYPES = (types.FunctionType, types.BuiltinFunctionType, types.MethodType, type, np.ufunc)


def _carried_state(kernel: Kernel) -> dict[str, Any]:
    """A kernel's attributes minus its configuration (functions, classes).

    >>> from dataflows.kernels import make_kernel
    >>> sorted(_carried_state(make_kernel("shift", {"n": 1})))
    ['buffer', 'n']
    """
    attrs = dict(vars(kernel)) if hasattr(kernel, "__dict__") else {}
    for cls in type(kernel).__mro__:
        for name in getattr(cls, "__slots__", ()):
            if hasattr(kernel, name):
                attrs[name] = getattr(kernel, name)
    return {k: v for k, v in attrs.items() if not isinstance(v, _CONFIG_TYPES)}
