"""Read a Parquet file one row group at a time without holding its whole footer.

A Parquet footer describes every row group of the file, and Arrow keeps it parsed for as
long as a reader is open: about 1 KB per column chunk, so 5 KB per row group of bars (six
columns), 0.5 MB per symbol for 1M bars (measured: 100 open readers of 1M-bar files hold 58
MB, of 10k-bar files 9 MB). A replay that keeps one reader per symbol open for the whole run
would hold memory that grows with history even though it reads one row group at a time.

For a file longer than ``WINDOW`` row groups, :class:`RowGroupFile` keeps instead where each
row group's entry lies in the serialized footer (16 bytes per row group) and the footer's
fields around the list of row groups (schema and key-value metadata, independent of
history). To read row group ``i`` it reads the entries of up to ``WINDOW`` row groups from
``i`` from the file again, builds a footer that lists only them and reads through Arrow's
own reader with that metadata: the parsed metadata held is bounded by the window whatever
the length of the file. The bytes decoded are the same column chunks, so the values are
the same bits. The entries are found in the Thrift compact encoding by a small generic
skipper (`parquet-format <https://github.com/apache/parquet-format>`_: the footer is a
``FileMetaData`` struct whose field 4 is ``list<RowGroup>``).

>>> import tempfile, os
>>> import pyarrow as pa, pyarrow.parquet as pq
>>> path = os.path.join(tempfile.mkdtemp(), "x.parquet")
>>> pq.write_table(pa.table({"x": list(range(10))}), path, row_group_size=4)
>>> f = RowGroupFile(path)
>>> f.num_row_groups, f.read(2).column("x").to_pylist()
(3, [8, 9])
>>> f.close()
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from qmtl.core.errors import QmtlError

MAGIC = b"PAR1"

# Thrift compact protocol type ids
_TRUE, _FALSE, _BYTE, _I16, _I32, _I64, _DOUBLE, _BINARY = 1, 2, 3, 4, 5, 6, 7, 8
_LIST, _SET, _MAP, _STRUCT, _UUID = 9, 10, 11, 12, 13
_ROW_GROUPS = 4  # FileMetaData field id of list<RowGroup>
WINDOW = 16
"""Row groups whose metadata a :class:`RowGroupFile` holds at a time (about 80 KB of parsed
metadata for six columns; 160k bars with the catalog's 10k-bar row groups)."""


class FooterError(QmtlError, ValueError):
    """The file is not a plain (unencrypted) Parquet file, or its footer is malformed."""


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    out = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        out |= (b & 0x7F) << shift
        if b < 0x80:
            return out, pos
        shift += 7


def _skip(buf: bytes, pos: int, kind: int) -> int:
    """The position just after the value of type ``kind`` that starts at ``pos``."""
    if kind in (_TRUE, _FALSE):
        return pos  # a struct field's bool lives in its header
    if kind == _BYTE:
        return pos + 1
    if kind in (_I16, _I32, _I64):
        return _varint(buf, pos)[1]
    if kind == _DOUBLE:
        return pos + 8
    if kind == _BINARY:
        n, pos = _varint(buf, pos)
        return pos + n
    if kind in (_LIST, _SET):
        n, elem, pos = _list_header(buf, pos)
        if elem in (_TRUE, _FALSE):
            return pos + n  # one byte per bool element
        for _ in range(n):
            pos = _skip(buf, pos, elem)
        return pos
    if kind == _MAP:
        n, pos = _varint(buf, pos)
        if n:
            types = buf[pos]
            pos += 1
            for _ in range(n):
                pos = _skip(buf, pos, types >> 4)
                pos = _skip(buf, pos, types & 0x0F)
        return pos
    if kind == _STRUCT:
        while True:
            header = buf[pos]
            pos += 1
            if header == 0:
                return pos
            if header >> 4 == 0:  # long form: the field id follows as a zigzag varint
                pos = _varint(buf, pos)[1]
            pos = _skip(buf, pos, header & 0x0F)
    if kind == _UUID:
        return pos + 16
    raise FooterError(f"unknown Thrift compact type {kind}")


def _skip_struct(buf: bytes, pos: int) -> int:
    """:func:`_skip` of a struct, without recursion (the footer walk's hot loop: a row group
    entry is about 40 values per column)."""
    stack: list[list[int] | None] = []
    frame: list[int] | None = None  # None: in a struct; [left, type]: in a list
    while True:
        if frame is None:
            header = buf[pos]
            pos += 1
            if header == 0:
                if not stack:
                    return pos
                frame = stack.pop()
                continue
            if header < 0x10:  # long form: the field id follows as a zigzag varint
                while buf[pos] & 0x80:
                    pos += 1
                pos += 1
            kind = header & 0x0F
        else:
            if frame[0] == 0:
                frame = stack.pop()
                continue
            frame[0] -= 1
            kind = frame[1]
        if kind in (_I32, _I64, _I16):
            while buf[pos] & 0x80:
                pos += 1
            pos += 1
        elif kind == _BINARY:
            n, pos = _varint(buf, pos)
            pos += n
        elif kind == _STRUCT:
            stack.append(frame)
            frame = None
        elif kind in (_LIST, _SET):
            n, elem, pos = _list_header(buf, pos)
            if elem in (_TRUE, _FALSE):
                pos += n
            else:
                stack.append(frame)
                frame = [n, elem]
        elif kind in (_TRUE, _FALSE):
            pos += 0 if frame is None else 1
        else:
            pos = _skip(buf, pos, kind)


def _uvarint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _list_header(buf: bytes, pos: int) -> tuple[int, int, int]:
    header = buf[pos]
    pos += 1
    n, elem = header >> 4, header & 0x0F
    if n == 15:
        n, pos = _varint(buf, pos)
    return n, elem, pos


def split_footer(footer: bytes) -> tuple[bytes, np.ndarray, bytes]:
    """``(head, spans, tail)`` of a serialized ``FileMetaData``: the bytes before the list of
    row groups (its field header included), each row group's ``[start, end)`` in ``footer``
    (an ``(n, 2)`` int64 array) and the bytes after the list.

    >>> import io
    >>> buf = io.BytesIO()
    >>> pq.write_table(pa.table({"x": [1, 2, 3]}), buf, row_group_size=2)
    >>> raw = buf.getvalue()
    >>> n = struct.unpack("<I", raw[-8:-4])[0]
    >>> head, spans, tail = split_footer(raw[-8 - n : -8])
    >>> spans.shape
    (2, 2)
    """
    try:
        pos, field = 0, 0
        while True:
            header = footer[pos]
            if header == 0:
                return footer[:pos], np.empty((0, 2), dtype=np.int64), footer[pos:]
            pos += 1
            delta, kind = header >> 4, header & 0x0F
            if delta:
                field += delta
            else:
                zigzag, pos = _varint(footer, pos)
                field = (zigzag >> 1) ^ -(zigzag & 1)
            if field == _ROW_GROUPS and kind == _LIST:
                head_end = pos
                n, elem, pos = _list_header(footer, pos)
                if elem != _STRUCT:
                    raise FooterError("row_groups is not a list of structs")
                spans = np.empty((n, 2), dtype=np.int64)
                for i in range(n):
                    end = _skip_struct(footer, pos)
                    spans[i] = pos, end
                    pos = end
                return footer[:head_end], spans, footer[pos:]
            pos = _skip(footer, pos, kind)
    except IndexError:
        raise FooterError("truncated Parquet footer") from None


def _footer_file(footer: bytes) -> pa.BufferReader:
    """A file holding nothing but ``footer`` (for :func:`pyarrow.parquet.read_metadata`)."""
    return pa.BufferReader(MAGIC + footer + struct.pack("<I", len(footer)) + MAGIC)


class RowGroupFile:
    """One Parquet file, read a row group at a time (see the module docstring). A file of at
    most ``WINDOW`` row groups is read with its whole footer parsed (it is within the bound);
    a longer one keeps only where each row group's entry lies and parses a window at a time.

    >>> import io
    >>> buf = io.BytesIO()
    >>> pq.write_table(pa.table({"x": list(range(40))}), buf, row_group_size=1)
    >>> f = RowGroupFile(pa.BufferReader(buf.getvalue()))
    >>> f.num_row_groups, f.read(39).column("x").to_pylist(), f.held_row_groups
    (40, [39], 1)
    >>> f.read(3).column("x").to_pylist(), f.held_row_groups
    ([3], 16)
    """

    def __init__(self, source: str | Path | pa.NativeFile) -> None:
        self.path = str(source) if isinstance(source, (str, Path)) else "<stream>"
        self._file = source if isinstance(source, pa.NativeFile) else pa.OSFile(self.path)
        self._window: tuple[int, pq.ParquetFile | None] = (0, None)
        try:
            size = self._file.size()
            if size < 12:
                raise FooterError(f"{self.path} is too small to be a Parquet file")
            tail = self._file.read_at(8, size - 8)
            if tail[4:] != MAGIC:
                raise FooterError(f"{self.path} is not a plain Parquet file (magic {tail[4:]!r})")
            length = struct.unpack("<I", tail[:4])[0]
            if length + 12 > size:
                raise FooterError(f"{self.path}: footer length {length} exceeds the file")
            self._footer_at, self._footer_length = size - 8 - length, length
            footer = self._file.read_at(length, self._footer_at)
            meta = pq.read_metadata(_footer_file(footer))
            self.num_row_groups = meta.num_row_groups
            spans = None
            if self.num_row_groups > WINDOW:
                try:
                    head, spans, tail = split_footer(footer)
                except FooterError:
                    spans = None  # a footer Arrow reads but this skimmer does not: see below
                if spans is not None and len(spans) != self.num_row_groups:
                    spans = None
            if spans is None:
                # short, or not split: read with the whole footer parsed, as Arrow does
                self._window = (0, pq.ParquetFile(self._file, metadata=meta, pre_buffer=False))
                self._spans = np.empty((0, 2), dtype=np.int64)
            else:
                del meta
                self._head, self._spans, self._tail = head, spans, tail
        except BaseException:
            self._file.close()
            raise

    @property
    def held_row_groups(self) -> int:
        """Row groups whose parsed metadata is held now (at most ``WINDOW``)."""
        reader = self._window[1]
        return 0 if reader is None else reader.num_row_groups

    def metadata(self) -> pq.FileMetaData:
        """The whole footer, parsed (read again from the file when it is long; not kept)."""
        reader = self._window[1]
        if reader is not None and reader.num_row_groups == self.num_row_groups:
            return reader.metadata  # the whole footer is parsed already
        footer = self._file.read_at(self._footer_length, self._footer_at)
        return pq.read_metadata(_footer_file(footer))

    def read(self, i: int, columns: Sequence[str] | None = None) -> pa.Table:
        """Row group ``i``. The metadata of a window of ``WINDOW`` row groups from ``i`` is
        parsed and kept while reads stay in it (one parse per window, not per read)."""
        if not 0 <= i < self.num_row_groups:
            raise IndexError(f"row group {i} of {self.num_row_groups} in {self.path}")
        lo, reader = self._window
        if reader is None or not lo <= i < lo + reader.num_row_groups:
            lo, reader = i, self._open_window(i, min(i + WINDOW, self.num_row_groups))
            self._window = lo, reader
        return reader.read_row_group(
            i - lo, columns=None if columns is None else list(columns), use_threads=False
        )

    def _open_window(self, lo: int, hi: int) -> pq.ParquetFile:
        """A reader whose metadata lists row groups ``lo`` to ``hi - 1`` only (their entries
        are contiguous in the footer)."""
        self._window = (0, None)  # the previous window's metadata goes first
        start, end = int(self._spans[lo, 0]), int(self._spans[hi - 1, 1])
        entries = self._file.read_at(end - start, self._footer_at + start)
        n = hi - lo
        # list<struct> header: the size in the high nibble, or 15 there and a varint after
        header = bytes([n << 4 | _STRUCT]) if n < 15 else bytes([0xF0 | _STRUCT]) + _uvarint(n)
        footer = self._head + header + entries + self._tail
        meta = pq.read_metadata(_footer_file(footer))
        return pq.ParquetFile(self._file, metadata=meta, pre_buffer=False)

    def close(self) -> None:
        """Close the file."""
        self._window = (0, None)
        self._file.close()

    def __enter__(self) -> RowGroupFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
