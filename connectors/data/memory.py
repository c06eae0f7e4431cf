"""Time-aligned replay of per-symbol bar streams (in memory or from any chunk iterator).

Replay keeps symbols in step: each round picks a horizon, the earliest time any open symbol
reaches with its next ``batch_size`` rows, and emits every symbol's rows up to it. So a
downstream step that joins symbols by time buffers at most about one batch per symbol, and
memory depends on the batch size and the number of symbols, not on the length of history.

>>> import numpy as np
>>> data = {"A": {"ts": np.array([1, 2, 3, 4])}, "B": {"ts": np.array([2, 4])}}
>>> [(s, b["ts"].tolist()) for s, b in aligned_batches(data, batch_size=2)]
[('A', [1, 2]), ('B', [2]), ('A', [3, 4]), ('B', [4])]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import numpy as np

from qmtl.core.bars import Batch


def _sizes(batch_size: int | Sequence[int]) -> list[int]:
    sizes = [batch_size] if isinstance(batch_size, int) else list(batch_size)
    if not sizes or any(int(s) < 1 for s in sizes):
        raise ValueError(f"batch sizes must be positive, got {batch_size!r}")
    return [int(s) for s in sizes]


def align(
    streams: Mapping[str, Iterator[Batch]], batch_size: int | Sequence[int] = 10_000
) -> Iterator[tuple[str, Batch]]:
    """Merge per-symbol streams of time-ordered chunks into time-aligned ``(symbol, batch)``
    items of at most ``batch_size`` rows (a sequence of sizes is used in turn, cycling).

    >>> chunks = {"A": iter([{"ts": np.arange(3)}, {"ts": np.arange(3, 5)}])}
    >>> [b["ts"].tolist() for _, b in align(chunks, batch_size=[1, 3])]
    [[0], [1, 2, 3], [4]]
    """
    sizes = _sizes(batch_size)
    names = list(streams)
    buffers: dict[str, Batch | None] = dict.fromkeys(names)
    exhausted = dict.fromkeys(names, False)

    pending: dict[str, Batch | None] = dict.fromkeys(names)  # a chunk's rows not yet held

    def fill(s: str, need: int) -> int:
        # held rows + the next chunk: only the rows still needed are copied, so a large chunk
        # is not copied whole for the few rows left of the one before (the rest stays a view)
        held = buffers[s]
        while held is None or len(held["ts"]) < need:
            chunk = pending[s]
            pending[s] = None
            if chunk is None:
                chunk = None if exhausted[s] else next(streams[s], None)
                if chunk is None:
                    exhausted[s] = True
                    break
            n = len(chunk["ts"])
            if not n:
                continue
            if held is None or not len(held["ts"]):
                held = chunk
                continue
            take = need - len(held["ts"])
            if take < n:
                pending[s] = {k: v[take:] for k, v in chunk.items()}
                chunk = {k: v[:take] for k, v in chunk.items()}
            held = {k: np.concatenate([held[k], chunk[k]]) for k in chunk}
        buffers[s] = held
        return 0 if held is None else len(held["ts"])

    round_no = 0
    while True:
        size = sizes[round_no % len(sizes)]
        round_no += 1
        open_syms = [s for s in names if fill(s, size) > 0]
        if not open_syms:
            return
        horizon = min(
            int(buffers[s]["ts"][min(size, len(buffers[s]["ts"])) - 1])  # type: ignore[index]
            for s in open_syms
        )
        progressed = False
        for s in open_syms:
            held = buffers[s]
            assert held is not None
            stop = min(int(np.searchsorted(held["ts"], horizon, side="right")), size)
            if stop == 0 and not progressed and s == open_syms[-1]:
                stop = min(size, len(held["ts"]))  # unsorted input: move on; validation reports it
            if stop:
                yield s, {k: v[:stop] for k, v in held.items()}
                buffers[s] = {k: v[stop:] for k, v in held.items()}
                progressed = True


def aligned_batches(
    data: Mapping[str, Mapping[str, np.ndarray]],
    batch_size: int | Sequence[int] = 10_000,
    symbols: Sequence[str] | None = None,
) -> Iterator[tuple[str, Batch]]:
    """Time-aligned ``(symbol, batch)`` items over bars held in memory.

    >>> data = {"A": {"ts": np.arange(5)}}
    >>> [b["ts"].tolist() for _, b in aligned_batches(data, batch_size=[1, 3])]
    [[0], [1, 2, 3], [4]]
    """
    names = sorted(data) if symbols is None else list(symbols)
    streams = {s: iter([{k: np.asarray(v) for k, v in data[s].items()}]) for s in names}
    return align(streams, batch_size)
