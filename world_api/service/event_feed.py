"""One reader of a world's stored events for all its subscribers, and a cap on the event
streams a token may hold open.

A world's activation stream (``GET /worlds/{world}/events``) may have many subscribers:
every live run's order gate, dashboards, relays. Each polling the store would cost the
store one query per subscriber per poll, and the writers wait behind them. Instead, a
world with subscribers has one :class:`WorldTail`: a task that reads the events after the
last it has (one query for everyone), keeps the latest :data:`KEEP` in memory and wakes
the subscribers. It reads when a write of this process says the world has new events
(:meth:`Tails.poke`, called after the commit) and at least every ``poll`` seconds, for
writes it is not told about (an apply's steps, another process). A subscriber first reads
its backlog from the store, then follows the tail; one that falls further behind than the
tail keeps reads the store again. The stored events stay the truth: the tail is a cache of
their end.

>>> import asyncio, tempfile, os
>>> from world_api.service.store import WorldInfo, open_store
>>> store = open_store(os.path.join(tempfile.mkdtemp(), "w.db"))
>>> store.create_world(WorldInfo(id="w"))
>>> async def demo():
...     tails = Tails(store)
...     return [batch async for batch in tails.follow("w", 0, once=True)]
>>> asyncio.run(demo())
[]
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from qmtl.core.contracts import ActivationEvent
from world_api.service.errors import HTTPError
from world_api.service.store import Store

KEEP = 1024
"""Events each world's tail keeps in memory."""

POLL = 1.0
"""Seconds between a tail's reads when no write of this process pokes it."""

WAKE_SLICE = 50
"""Subscribers a tail wakes per turn of the event loop."""

MAX_STREAMS_PER_TOKEN = 100
"""Event streams one token may hold open at once (more get 429)."""


class WorldTail:
    """The end of one world's stored events, read once for all its subscribers.

    >>> WorldTail(None, "w").after(0)  # nothing read yet: nothing after seq 0
    []
    """

    def __init__(self, store: Store, world: str, keep: int = KEEP, poll: float = POLL) -> None:
        self.store, self.world, self.poll = store, world, poll
        self.ring: deque[ActivationEvent] = deque(maxlen=keep)
        self.latest = -1  # seq of the newest event read (-1: not read yet)
        self.subscribers = 0
        self.wake = asyncio.Event()  # set by a poke: read now
        self._waiting: list[asyncio.Future[None]] = []  # subscribers waiting for new events
        self.task: asyncio.Task[None] | None = None

    async def run(self) -> None:
        """Read new events until nobody subscribes."""
        while self.subscribers:
            with contextlib.suppress(Exception):  # a failed read is tried again next round
                await self._read()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.poll)
            self.wake.clear()

    async def _read(self) -> None:
        before = self.latest
        if self.latest < 0:
            self.latest = await asyncio.to_thread(self.store.world_seq, self.world)
        else:
            while True:
                batch = await asyncio.to_thread(self.store.events_after, self.world,
                                                self.latest)
                if not batch:
                    break
                self.ring.extend(batch)
                self.latest = batch[-1].seq
        if self.latest != before:  # wake the subscribers only for something new
            await self._wake_all()

    async def _wake_all(self) -> None:
        """Wake the waiting subscribers, :data:`WAKE_SLICE` per turn of the event loop: a
        thousand streams sending at once would hold up every request for that long."""
        waiting, self._waiting = self._waiting, []
        for i in range(0, len(waiting), WAKE_SLICE):
            for future in waiting[i:i + WAKE_SLICE]:
                if not future.done():  # a subscriber that left meanwhile is cancelled
                    future.set_result(None)
            await asyncio.sleep(0)

    async def wait(self) -> None:
        """Until new events arrive."""
        future = asyncio.get_running_loop().create_future()
        self._waiting.append(future)
        await future

    def after(self, cursor: int) -> list[ActivationEvent] | None:
        """The kept events after seq ``cursor``, or None when the tail does not keep them
        all (the caller reads the store)."""
        if self.latest <= cursor:
            return []
        if not self.ring or self.ring[0].seq > cursor + 1:
            return None
        newer = []
        for e in reversed(self.ring):  # from the end: a subscriber is usually a few behind
            if e.seq <= cursor:
                break
            newer.append(e)
        newer.reverse()
        return newer


class Tails:
    """Every world's tail, kept while the world has subscribers (see the module docstring).
    """

    def __init__(self, store: Store, poll: float = POLL,
                 max_per_token: int = MAX_STREAMS_PER_TOKEN, keep: int = KEEP) -> None:
        self.store, self.poll, self.max_per_token, self.keep = store, poll, max_per_token, keep
        self._tails: dict[str, WorldTail] = {}
        self._streams: dict[str, int] = {}  # open streams by token id
        self._loop: asyncio.AbstractEventLoop | None = None

    def poke(self, world: str) -> None:
        """Say ``world`` has new stored events (callable from any thread)."""
        tail, loop = self._tails.get(world), self._loop
        if tail is None or loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(tail.wake.set)

    def open_stream(self, token: str) -> Callable[[], None]:
        """Count one more open event stream of ``token`` and return what closes it (call it
        once or more); a token at its cap gets a 429 that says so.

        >>> tails = Tails(None, max_per_token=1)
        >>> close = tails.open_stream("0a1b2c3d")
        >>> tails.open_stream("0a1b2c3d")
        Traceback (most recent call last):
        ...
        world_api.service.errors.HTTPError: token 0a1b2c3d already holds 1 open event streams, ...
        >>> close(); close(); tails.streams("0a1b2c3d")
        0
        """
        held = self._streams.get(token, 0)
        if held >= self.max_per_token:
            raise HTTPError(429, f"token {token} already holds {held} open event streams, the "
                                 "most one token may; close one first")
        self._streams[token] = held + 1
        closed = False

        def close() -> None:
            nonlocal closed
            if closed:
                return
            closed = True
            left = self._streams.get(token, 1) - 1
            if left > 0:
                self._streams[token] = left
            else:
                self._streams.pop(token, None)

        return close

    def streams(self, token: str) -> int:
        """Event streams ``token`` holds open now."""
        return self._streams.get(token, 0)

    @contextlib.contextmanager
    def _subscribed(self, world: str) -> Iterator[WorldTail]:
        self._loop = asyncio.get_running_loop()
        tail = self._tails.get(world)
        if tail is None:
            tail = self._tails[world] = WorldTail(self.store, world, self.keep, self.poll)
        tail.subscribers += 1
        if tail.task is None or tail.task.done():
            tail.task = asyncio.create_task(tail.run())
        try:
            yield tail
        finally:
            tail.subscribers -= 1
            if not tail.subscribers:
                self._tails.pop(world, None)
                tail.wake.set()  # let its task see it is done

    async def follow(self, world: str, after: int, *,
                     once: bool = False) -> AsyncIterator[list[ActivationEvent]]:
        """``world``'s events after seq ``after``, in batches (what was there at once): the
        stored backlog, then new ones as the tail reads them (until caught up, with
        ``once``)."""
        cursor = after
        with self._subscribed(world) as tail:
            while True:
                batch = tail.after(cursor)
                if batch is None or (once and not batch):  # behind the tail, or to the end
                    batch = await asyncio.to_thread(self.store.events_after, world, cursor)
                if batch:
                    cursor = batch[-1].seq
                    yield batch
                    continue
                if once:
                    return
                if tail.latest <= cursor:
                    await tail.wait()


class Closing:
    """An async iterator over ``events`` that calls ``close`` once, when it ends, is closed
    or is dropped unstarted (a client that went away before its stream began).

    >>> import asyncio
    >>> async def two():
    ...     yield 1
    ...     yield 2
    >>> closed = []
    >>> async def demo():
    ...     return [x async for x in Closing(two(), lambda: closed.append(True))]
    >>> asyncio.run(demo()), closed
    ([1, 2], [True])
    """

    def __init__(self, events: AsyncIterator[Any], close: Callable[[], None]) -> None:
        self.events, self._on_close, self._closed = events, close, False

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self._on_close()

    def __aiter__(self) -> Closing:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.events.__anext__()
        except BaseException:
            self._close()
            raise

    async def aclose(self) -> None:
        """Close the events and count the stream closed."""
        self._close()
        aclose = getattr(self.events, "aclose", None)
        if aclose is not None:
            await aclose()

    def __del__(self) -> None:
        self._close()
