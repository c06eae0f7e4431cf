"""Group commit: requests that arrive while a world is being written wait, then are written
together, in one transaction.

A live run posts one small update per bar, so a busy world gets many small requests at once.
Written one by one, each pays a transaction (and on PostgreSQL a WAL flush) under the world's
lock, and the queue of waiting requests grows. Here the first request of a quiet world is
written at once; those that arrive meanwhile queue, and when the write ends the whole queue
goes as the next group (at most ``max_group``). Nothing waits on a timer: an idle world
answers as fast as before, a busy one batches by itself.

The queue lives on the event loop (no lock); the write runs in a worker thread. ``write``
gets the world and the group's items and returns one outcome per item: a result, or an
exception for that request alone. An exception raised by ``write`` itself fails every
request of the group (nothing of it was stored).

>>> import asyncio
>>> calls = []
>>> def write(world, items):
...     calls.append(list(items))
...     return [ValueError("odd") if i % 2 else i * 10 for i in items]
>>> async def demo():
...     group = GroupCommit(write)
...     return await asyncio.gather(*(group.submit("w", i) for i in range(4)),
...                                 return_exceptions=True)
>>> [repr(r) for r in asyncio.run(demo())]
['0', "ValueError('odd')", '20', "ValueError('odd')"]
>>> calls  # all four arrived before the write began: one group
[[0, 1, 2, 3]]
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")

MAX_GROUP = 256
"""Requests written in one transaction at most."""


class GroupCommit(Generic[Item]):
    """Per-world queues of requests, written group by group (see the module docstring)."""

    def __init__(self, write: Callable[[str, Sequence[Item]], Sequence[Any]],
                 max_group: int = MAX_GROUP, weigh: Callable[[Item], int] | None = None,
                 max_weight: int | None = None) -> None:
        self.write, self.max_group = write, max_group
        # with ``weigh``, a group also stops before its items' weights pass ``max_weight``
        # (its first item always goes), and :meth:`queued` sums the weights of a world's
        # waiting and writing items (ingest_limits.py: the updates of each request)
        self.weigh, self.max_weight = weigh, max_weight
        self._load: dict[str, int] = {}
        self.heaviest = 0  # the largest weight one group has written (for tests and benches)
        self._queues: dict[str, list[tuple[Item, asyncio.Future[Any]]]] = {}
        self._writers: dict[str, asyncio.Task[None]] = {}
        self.groups = 0  # groups written (for tests and /metrics)

    async def submit(self, world: str, item: Item) -> Any:
        """Queue ``item`` for ``world``'s next group; its outcome (or raise its exception)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        weight = self.weigh(item) if self.weigh is not None else 1
        self._load[world] = self._load.get(world, 0) + weight
        self._queues.setdefault(world, []).append((item, future))
        if world not in self._writers:
            self._writers[world] = asyncio.create_task(self._drain(world))
        try:
            return await future
        finally:
            left = self._load.get(world, 0) - weight
            if left > 0:
                self._load[world] = left
            else:
                self._load.pop(world, None)

    def queued(self, world: str) -> int:
        """The weight of ``world``'s items waiting or being written (their count without
        ``weigh``)."""
        return self._load.get(world, 0)

    def _take(self, queue: list[tuple[Item, asyncio.Future[Any]]]) -> int:
        """How many of the queue's first items the next group takes."""
        n = min(len(queue), self.max_group)
        if self.weigh is None or self.max_weight is None:
            return n
        total = 0
        for i in range(n):
            total += self.weigh(queue[i][0])
            if i and total > self.max_weight:
                return i
        return n

    def waiting(self, world: str) -> int:
        """Requests queued for ``world`` (not yet in a group being written)."""
        return len(self._queues.get(world, ()))

    async def _drain(self, world: str) -> None:
        try:
            while self._queues.get(world):
                queue = self._queues[world]
                n = self._take(queue)
                group, self._queues[world] = queue[:n], queue[n:]
                await self._write(world, group)
        finally:
            self._writers.pop(world, None)
            left = self._queues.pop(world, [])  # only when cancelled (the server stops)
            self._settle(left, [RuntimeError("the server is stopping")] * len(left))

    async def _write(self, world: str, group: list[tuple[Item, asyncio.Future[Any]]]) -> None:
        items = [item for item, _ in group]
        if self.weigh is not None:
            self.heaviest = max(self.heaviest, sum(self.weigh(item) for item in items))
        try:
            outcomes: Sequence[Any] = await asyncio.to_thread(self.write, world, items)
            if len(outcomes) != len(items):
                raise RuntimeError(f"group write gave {len(outcomes)} outcomes for "
                                   f"{len(items)} requests")
        except BaseException as exc:  # the whole group failed: each request says so
            outcomes = [exc] * len(items)
            if not isinstance(exc, Exception):
                self._settle(group, outcomes)
                raise
        self.groups += 1
        self._settle(group, outcomes)

    @staticmethod
    def _settle(group: list[tuple[Item, asyncio.Future[Any]]], outcomes: Sequence[Any]) -> None:
        for (_, future), outcome in zip(group, outcomes, strict=True):
            if future.done():  # the client went away
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)
