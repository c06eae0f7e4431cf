"""In-process Bytewax source and sink: replay an iterator of bar batches, collect outputs.

The source yields ``(symbol, batch)`` items from a factory of iterators (for example a
catalog's time-aligned ``iter_batches``), one item per ``next_batch`` call, and reports
progress. It stops early, cleanly, when the run's control says the run failed. Its resume
state is the number of items already emitted, so a restarted replay skips them.

>>> import numpy as np
>>> from bytewax.dataflow import Dataflow
>>> import bytewax.operators as op
>>> from bytewax.testing import run_main
>>> items = [("A", {"close": np.array([1.0])}), ("B", {"close": np.array([2.0])})]
>>> got = []
>>> flow = Dataflow("doc")
>>> s = op.input("in", flow, ReplaySource(lambda: iter(items)))
>>> op.output("out", op.map("sym", s, lambda kv: kv[0]), CallbackSink(got.append))
>>> run_main(flow)
>>> got
['A', 'B']
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from bytewax.inputs import FixedPartitionedSource, StatefulSourcePartition
from bytewax.outputs import DynamicSink, StatelessSinkPartition

from dataflows.control import RunControl

Item = tuple[str, Any]


def _size_of(item: Any) -> int:
    """Bars in an item ``(key, batch)`` or ``(key, (symbol, batch))``; 1 otherwise."""
    value = item[1] if isinstance(item, tuple) and len(item) == 2 else item
    if isinstance(value, tuple) and len(value) == 2:
        value = value[1]
    return len(value["ts"]) if isinstance(value, dict) and "ts" in value else 1


class _ReplayPartition(StatefulSourcePartition[Item, int]):
    def __init__(self, items: Iterator[Item], skip: int, control: RunControl) -> None:
        self._items = items
        self._control = control
        self._emitted = 0
        for _ in range(skip):
            next(self._items, None)
            self._emitted += 1

    def next_batch(self) -> list[Item]:
        if self._control.failed:
            raise StopIteration
        try:
            item = next(self._items)
        except StopIteration:
            raise
        except Exception as exc:  # a reader error: stop cleanly, the runner reports it
            self._control.fail(exc)
            raise StopIteration from None
        self._emitted += 1
        if self._control.progress is not None:
            self._control.progress(_size_of(item))
        return [item]

    def snapshot(self) -> int:
        return self._emitted


class ReplaySource(FixedPartitionedSource[Item, int]):
    """Replays ``make_items()`` as one partition (see the module docstring).

    >>> ReplaySource(lambda: iter([])).list_parts()
    ['replay']
    """

    def __init__(
        self,
        make_items: Callable[[], Iterator[Item]],
        control: RunControl | None = None,
    ) -> None:
        self._make_items = make_items
        self._control = control or RunControl()

    def list_parts(self) -> list[str]:
        """One partition: the replay is read in time order by one reader.

        >>> ReplaySource(lambda: iter([("A", 1)])).list_parts()
        ['replay']
        """
        return ["replay"]

    def build_part(self, step_id: str, for_part: str, resume_state: int | None) -> _ReplayPartition:
        """Start (or resume after ``resume_state`` items) the replay.

        >>> part = ReplaySource(lambda: iter(["a", "b", "c"])).build_part("in", "replay", 1)
        >>> part.next_batch(), part.snapshot()
        (['b'], 2)
        """
        return _ReplayPartition(self._make_items(), resume_state or 0, self._control)


class _CallbackPartition(StatelessSinkPartition[Any]):
    def __init__(self, fn: Callable[[Any], None]) -> None:
        self._fn = fn

    def write_batch(self, items: list[Any]) -> None:
        for item in items:
            self._fn(item)


class CallbackSink(DynamicSink[Any]):
    """Calls ``fn(item)`` for every output item, on whichever worker produced it.

    >>> got = []
    >>> CallbackSink(got.append).build("out", 0, 1).write_batch([1, 2])
    >>> got
    [1, 2]
    """

    def __init__(self, fn: Callable[[Any], None]) -> None:
        self._fn = fn

    def build(self, step_id: str, worker_index: int, worker_count: int) -> _CallbackPartition:
        """One partition per worker, all calling the same function.

        >>> CallbackSink(print).build("out", 0, 1).write_batch(["hi"])
        hi
        """
        return _CallbackPartition(self._fn)
