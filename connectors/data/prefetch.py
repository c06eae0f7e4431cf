"""Read ahead in a background thread: the next items of an iterator are produced while the
consumer works on the current one.

A :class:`Prefetcher` runs ``iterator`` in a daemon thread and hands its items over through a
queue of at most ``depth`` items, so the thread is never more than ``depth`` items ahead
(memory stays bounded). Items arrive in order; an exception the iterator raises is raised
again, the same object, in the consumer at the point the item would have come, after the
items before it. Closing the prefetcher (or dropping it, or leaving a ``with`` block) stops
the thread: it finishes the item it is producing, closes the iterator and exits.

It pays where producing an item mostly runs without the GIL (Parquet reads and decodes,
large numpy copies) while the consumer runs Python.

>>> with Prefetcher(iter(range(5)), depth=2) as items:
...     list(items)
[0, 1, 2, 3, 4]
"""

from __future__ import annotations

import queue
import threading
import weakref
from collections.abc import Iterator
from typing import Generic, TypeVar

T = TypeVar("T")

_END = object()


class _Failed:
    """The producer's exception, carried through the queue."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class _State:
    """What the producer thread shares with the consumer (not the Prefetcher itself, so that
    a dropped Prefetcher is collected and its finalizer stops the thread)."""

    def __init__(self, depth: int) -> None:
        self.items: queue.Queue[object] = queue.Queue(maxsize=depth)
        self.stop = threading.Event()


def _produce(iterator: Iterator[object], state: _State) -> None:
    try:
        for item in iterator:
            if not _put(state, item):
                return
        _put(state, _END)
    except BaseException as exc:
        _put(state, _Failed(exc))
    finally:
        close = getattr(iterator, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                pass


def _put(state: _State, item: object) -> bool:
    """Queue ``item``, waiting while the queue is full; False once the consumer stopped."""
    while not state.stop.is_set():
        try:
            state.items.put(item, timeout=0.05)
            return True
        except queue.Full:
            continue
    return False


def _stop(state: _State, thread: threading.Thread, wait: bool) -> None:
    state.stop.set()
    try:  # unblock a producer waiting on a full queue at once
        while True:
            state.items.get_nowait()
    except queue.Empty:
        pass
    if wait and thread is not threading.current_thread():
        thread.join()


class Prefetcher(Generic[T]):
    """Items of ``iterator``, produced up to ``depth`` ahead in a background thread (see the
    module docstring). ``name`` names the thread.

    >>> def numbers():
    ...     yield 1
    ...     raise ValueError("bad row group")
    >>> items = Prefetcher(numbers())
    >>> next(items)
    1
    >>> next(items)
    Traceback (most recent call last):
    ...
    ValueError: bad row group
    """

    def __init__(self, iterator: Iterator[T], depth: int = 1, name: str = "qmtl-prefetch") -> None:
        if depth < 1:
            raise ValueError(f"prefetch depth must be >= 1, got {depth}")
        self._state = _State(depth)
        self._done = False
        self._thread = threading.Thread(target=_produce, args=(iterator, self._state),
                                        name=name, daemon=True)
        self._thread.start()
        self._finalizer = weakref.finalize(self, _stop, self._state, self._thread, False)

    def __iter__(self) -> Prefetcher[T]:
        return self

    def __next__(self) -> T:
        if self._done:
            raise StopIteration
        item = self._state.items.get()
        if item is _END:
            self._finish()
            raise StopIteration
        if isinstance(item, _Failed):
            self._finish()
            raise item.exc
        return item  # type: ignore[return-value]

    def _finish(self) -> None:
        self._done = True
        self._thread.join()
        self._finalizer.detach()

    def close(self) -> None:
        """Stop the producer thread and wait for it to exit (it finishes the item in hand)."""
        self._done = True
        if self._finalizer.detach() is not None:
            _stop(self._state, self._thread, wait=True)

    @property
    def alive(self) -> bool:
        """Whether the producer thread is still running."""
        return self._thread.is_alive()

    def __enter__(self) -> Prefetcher[T]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Demux(Generic[T]):
    """Split one iterator of ``(key, item)`` pairs into an iterator per key, each pulling from
    the shared one as it needs to: items of other keys met on the way are kept for their own
    iterators, in order. An exception of the shared iterator is raised by whichever iterator
    meets it and again by every iterator that asks for more after it.

    >>> parts = Demux(iter([("a", 1), ("b", 2), ("a", 3)]))
    >>> list(parts.stream("a")), list(parts.stream("b"))
    ([1, 3], [2])
    """

    def __init__(self, items: Iterator[tuple[str, T]]) -> None:
        self._items = items
        self._held: dict[str, list[T]] = {}
        self._failed: BaseException | None = None
        self._done = False

    def stream(self, key: str) -> Iterator[T]:
        """The items of ``key``, in order."""
        while True:
            held = self._held.get(key)
            if held:
                yield held.pop(0)
                continue
            if self._failed is not None:
                raise self._failed
            if self._done:
                return
            try:
                k, item = next(self._items)
            except StopIteration:
                self._done = True
                continue
            except BaseException as exc:
                self._failed = exc
                raise
            self._held.setdefault(k, []).append(item)
