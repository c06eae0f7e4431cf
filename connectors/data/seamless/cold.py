"""A cold read: a history that fits the cache but is not in it yet, read from its catalog
parts straight into the arrays its cache entry will be, a block of row groups at a time (the
replay starts on the first block while the next are read in a background thread).

>>> import tempfile
>>> from connectors.data.catalog import Catalog
>>> from connectors.data.synthetic import generate_bars
>>> cat = Catalog(tempfile.mkdtemp())
>>> _ = cat.write("A", "1m", generate_bars(50_000, interval="1m"))
>>> cold = ColdRead.open(cat, "A", "1m", None, None)
>>> blocks = [(a, b) for a, b, _ in cold.blocks(None, None)]
>>> blocks[0], blocks[-1][1], cold.count(-2**63, 2**63 - 1)
((0, 40000), 50000, 50000)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from connectors.data import parts as layout
from connectors.data.catalog import SCHEMA, Catalog, CatalogError
from connectors.data.parts import row_groups
from qmtl.core.bars import Batch
from qmtl.core.contracts import BAR_COLUMNS

BLOCK_GROUPS = (4, 16)
"""Row groups a cold read reads and decodes at a time: the first block of a history is small
(the replay starts soon), each next one twice the one before, up to the second number (few
calls into Parquet and few hand-overs of the GIL). Measured on 10 x 1M bars in one process,
cold over memory, four runs each: (2, 32) 1.33-1.46x, (4, 16) 1.25-1.33x; blocks of 32 row
groups (15 MB a symbol) hold the GIL in long stretches the engine waits on."""


def _clean(file: pq.ParquetFile) -> bool:
    """Whether ``file`` has the catalog's schema, ``ts`` statistics in every row group and
    no nulls (what a straight copy into the arrays needs)."""
    meta = file.metadata
    if not file.schema_arrow.equals(SCHEMA) or meta.num_columns != len(SCHEMA):
        return False
    for i in range(meta.num_row_groups):
        group = meta.row_group(i)
        for j in range(group.num_columns):
            stats = group.column(j).statistics
            if stats is None or not stats.has_null_count or stats.null_count:
                return False
            if j == 0 and not stats.has_min_max:
                return False
    return True


class ColdRead:
    """The parts of a (symbol, interval) that may hold a range, open for a cold read."""

    def __init__(self, files: list[tuple[Path, pq.ParquetFile]]) -> None:
        self.files = files

    @classmethod
    def open(
        cls, catalog: Catalog, symbol: str, interval: str, start: int | None, end: int | None
    ) -> ColdRead | None:
        """The parts that may hold ``[start, end]``, if each has the catalog's schema, ``ts``
        statistics in every row group and no nulls (else None: :meth:`Catalog.read` serves
        the range, with its casts and checks; also when a write replaces a part meanwhile)."""
        manifest = catalog.manifest(symbol, interval)
        if manifest is None:
            return None
        folder = catalog.folder(symbol, interval)
        files: list[tuple[Path, pq.ParquetFile]] = []
        try:
            for part in manifest.select(start, end):
                path = folder / part.file
                file = pq.ParquetFile(path, pre_buffer=False)
                files.append((path, file))
                if not _clean(file) or layout.mismatch(part, file.metadata) is not None:
                    raise ValueError("not a plain catalog part")
        except (pa.ArrowInvalid, OSError, ValueError):
            for _, file in files:
                file.close()
            return None  # Catalog.read names a corrupt file
        return cls(files)

    def close(self) -> None:
        """Close the parts."""
        for _, file in self.files:
            file.close()

    def _groups(self, start: int | None, end: int | None) -> list[tuple[int, int]]:
        return [
            (k, i)
            for k, (_, f) in enumerate(self.files)
            for i in row_groups(f.metadata, start, end)
        ]

    def _read(self, k: int, groups: list[int], columns: list[str]) -> pa.Table:
        path, file = self.files[k]
        try:
            return file.read_row_groups(groups, columns=columns, use_threads=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise CatalogError(f"corrupt catalog file {path}: {exc}") from None

    def count(self, start: int, end: int) -> int:
        """Bars with ``start <= ts <= end``: from the row groups' statistics, reading ``ts``
        only of the (at most two) row groups the range cuts."""
        n = 0
        for k, i in self._groups(start, end):
            group = self.files[k][1].metadata.row_group(i)
            stats = group.column(0).statistics
            if stats.min >= start and stats.max <= end:
                n += group.num_rows
                continue
            ts = self._read(k, [i], ["ts"]).column(0).to_numpy()
            n += int(np.searchsorted(ts, end, "right") - np.searchsorted(ts, start, "left"))
        return n

    def blocks(self, start: int | None, end: int | None) -> Iterator[tuple[int, int, Batch]]:
        """Read the row groups that may hold ``[start, end]`` into one array per column,
        a block at a time (see ``BLOCK_GROUPS``); after each block yield ``(a, b, arrays)``:
        rows ``a:b`` of the arrays are the block's bars inside the range (written,
        read-only)."""
        groups = self._groups(start, end)
        rows = sum(self.files[k][1].metadata.row_group(i).num_rows for k, i in groups)
        arrays = {
            c: np.empty(rows, dtype=SCHEMA.field(c).type.to_pandas_dtype()) for c in BAR_COLUMNS
        }
        views = {}
        for c, v in arrays.items():
            views[c] = v.view()
            views[c].flags.writeable = False
        pos, j, step = 0, 0, BLOCK_GROUPS[0]
        while j < len(groups):
            block = groups[j : j + step]
            j, step = j + step, min(2 * step, BLOCK_GROUPS[1])
            m = 0
            for k in dict.fromkeys(k for k, _ in block):  # the parts of the block, in order
                table = self._read(k, [i for kk, i in block if kk == k], list(BAR_COLUMNS))
                for c in BAR_COLUMNS:
                    at = pos + m
                    for chunk in table.column(c).chunks:
                        arrays[c][at : at + len(chunk)] = chunk.to_numpy()
                        at += len(chunk)
                m += table.num_rows
                del table
            ts = arrays["ts"][pos : pos + m]
            a = pos + (0 if start is None else int(np.searchsorted(ts, start, "left")))
            b = pos + (m if end is None else int(np.searchsorted(ts, end, "right")))
            pos += m
            yield a, b, views
            if b < pos:  # the range ends inside this block
                return
