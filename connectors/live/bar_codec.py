"""Bars on the wire: one JSON object per bar (or an Arrow IPC batch), keyed by symbol.

A bar message's key is the symbol (UTF-8); its value is JSON::

    {"ts": 1704153600000000000, "open": 100.0, "high": 101.5, "low": 99.2,
     "close": 100.7, "volume": 12000.0}

``ts`` is the bar's close time in int64 nanoseconds UTC; prices are finite and positive,
``volume`` finite and non-negative. A ``"symbol"`` field may repeat the key (it must agree)
or stand in for a missing key; other fields are ignored. For bulk feeds the value may instead
be an Arrow IPC stream of record batches with int64 ``ts`` and float ``open high low close
volume`` columns (and optionally a string ``symbol`` column instead of the key).

Anything else raises :class:`BadMessage` with the reason, which the live source sends to the
dead-letter topic with the message's topic, partition and offset.

>>> symbol, bar = decode_bar(b"AAPL", encode_bar({"ts": 5, "open": 1.0, "high": 2.0,
...                                                  "low": 0.5, "close": 1.5, "volume": 3.0}))
>>> symbol, bar["ts"].tolist(), bar["close"].tolist()
('AAPL', [5], [1.5])
>>> decode_bar(b"AAPL", b'{"ts": 5, "open": 1}')
Traceback (most recent call last):
...
connectors.live.bar_codec.BadMessage: missing field 'high'
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from qmtl.core.bars import Batch
from qmtl.core.contracts import BAR_COLUMNS
from qmtl.core.errors import QmtlError

_PRICES = ("open", "high", "low", "close")
_ARROW_STREAM_MAGIC = b"\xff\xff\xff\xff"

BAR_JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "QMTL bar",
    "description": "One bar; the Kafka message key is the symbol. ts is the close time.",
    "type": "object",
    "required": list(BAR_COLUMNS),
    "properties": {
        "ts": {"type": "integer", "description": "close time, ns since the epoch, UTC"},
        **{c: {"type": "number", "exclusiveMinimum": 0} for c in _PRICES},
        "volume": {"type": "number", "minimum": 0},
        "symbol": {"type": "string", "description": "optional; must equal the key"},
    },
}
"""The JSON Schema of a bar message's value (documented in the README)."""


class BadMessage(QmtlError, ValueError):
    """A message that is not a valid bar; the text says why.

    >>> isinstance(BadMessage("not JSON"), ValueError)
    True
    """


def encode_bar(bar: Mapping[str, Any], symbol: str | None = None) -> bytes:
    """The JSON value of one bar (``symbol`` is added when given).

    >>> encode_bar({"ts": 1, "open": 1, "high": 1, "low": 1, "close": 1, "volume": 0})
    b'{"ts":1,"open":1.0,"high":1.0,"low":1.0,"close":1.0,"volume":0.0}'
    """
    doc: dict[str, Any] = {"ts": int(bar["ts"])}
    for c in BAR_COLUMNS[1:]:
        doc[c] = float(bar[c])
    if symbol is not None:
        doc["symbol"] = symbol
    return json.dumps(doc, separators=(",", ":")).encode()


def encode_arrow(batch: Mapping[str, np.ndarray], symbol: str | None = None) -> bytes:
    """An Arrow IPC stream of ``batch`` (a bulk message; ``symbol`` adds a symbol column).

    >>> b = {"ts": np.array([1, 2]), **{c: np.ones(2) for c in BAR_COLUMNS[1:]}}
    >>> [(s, v["ts"].tolist()) for s, v in decode_message(b"X", encode_arrow(b))]
    [('X', [1, 2])]
    """
    cols = {"ts": pa.array(np.asarray(batch["ts"], dtype=np.int64))}
    for c in BAR_COLUMNS[1:]:
        cols[c] = pa.array(np.asarray(batch[c], dtype=np.float64))
    return arrow_stream(cols, symbol)


def arrow_stream(cols: dict[str, pa.Array], symbol: str | None = None) -> bytes:
    """The bytes of an Arrow IPC stream of ``cols`` (one table; ``symbol`` adds a symbol
    column): the bulk message of bars here and of trades (:mod:`connectors.live.trade_codec`).

    >>> len(arrow_stream({"ts": pa.array([1, 2])}, "X")) > 0
    True
    """
    if symbol is not None:
        cols = {**cols, "symbol": pa.array([symbol] * len(cols["ts"]), pa.string())}
    table = pa.table(cols)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _symbol(key: bytes | None, named: Any) -> str:
    from_key = None
    if key:
        try:
            from_key = key.decode()
        except UnicodeDecodeError:
            raise BadMessage("key is not UTF-8 text") from None
    if named is not None and not isinstance(named, str):
        raise BadMessage(f"field 'symbol' must be a string, got {type(named).__name__}")
    if from_key and named and named != from_key:
        raise BadMessage(f"field 'symbol' {named!r} disagrees with the key {from_key!r}")
    symbol = from_key or named
    if not symbol:
        raise BadMessage("no symbol: set the message key (or a 'symbol' field)")
    return symbol


def decode_bar(key: bytes | None, value: bytes | None) -> tuple[str, Batch]:
    """``(symbol, one-row batch)`` of a JSON bar message; :class:`BadMessage` otherwise.

    >>> decode_bar(b"X", b'{"ts": 1.5, "open": 1, "high": 1, "low": 1, "close": 1, "volume": 0}')
    Traceback (most recent call last):
    ...
    connectors.live.bar_codec.BadMessage: field 'ts' must be an integer (ns since the ...), got 1.5
    """
    if not value:
        raise BadMessage("empty message")
    try:
        doc = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadMessage(f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadMessage(f"expected a JSON object, got {type(doc).__name__}")
    symbol = _symbol(key, doc.get("symbol"))
    for c in BAR_COLUMNS:
        if c not in doc:
            raise BadMessage(f"missing field {c!r}")
    ts = doc["ts"]
    if isinstance(ts, bool) or not isinstance(ts, int):
        raise BadMessage(f"field 'ts' must be an integer (ns since the epoch), got {ts!r}")
    if not -(2**63) <= ts < 2**63:
        raise BadMessage(f"field 'ts' {ts} does not fit in int64")
    values = []
    for c in BAR_COLUMNS[1:]:
        v = doc[c]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise BadMessage(f"field {c!r} must be a number, got {v!r}")
        v = float(v)
        if not math.isfinite(v):
            raise BadMessage(f"field {c!r} is not finite ({v})")
        if (v <= 0) if c != "volume" else (v < 0):
            raise BadMessage(f"field {c!r} must be {'>= 0' if c == 'volume' else '> 0'}, got {v}")
        values.append(v)
    bar: Batch = {"ts": np.array([ts], dtype=np.int64)}
    for c, v in zip(BAR_COLUMNS[1:], values, strict=True):
        bar[c] = np.array([v])
    return symbol, bar


def _decode_arrow(key: bytes | None, value: bytes) -> Iterator[tuple[str, Batch]]:
    try:
        table = pa.ipc.open_stream(value).read_all()
        # IPC reading trusts the buffers' offsets: a corrupt one would read out of bounds
        # (a segfault later), so check them all before touching the data
        table.validate(full=True)
        table.column_names  # noqa: B018 -- decoded lazily: a name not in UTF-8 raises here
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:  # what corruption raises
        raise BadMessage(f"unreadable Arrow IPC stream: {exc}") from None
    missing = [c for c in BAR_COLUMNS if c not in table.column_names]
    if missing:
        raise BadMessage(f"Arrow batch lacks column {missing[0]!r}")
    if not pa.types.is_integer(table.schema.field("ts").type):
        raise BadMessage(f"Arrow column 'ts' must be int64 ns, got {table.schema.field('ts').type}")
    try:
        batch = {"ts": table.column("ts").cast(pa.int64()).to_numpy()}
        for c in BAR_COLUMNS[1:]:
            batch[c] = table.column(c).cast(pa.float64()).to_numpy()
    except pa.ArrowException as exc:
        raise BadMessage(f"Arrow batch has a non-numeric bar column: {exc}") from None
    if "symbol" not in table.column_names:
        yield _symbol(key, None), batch
        return
    names = table.column("symbol").to_pylist()
    for name in dict.fromkeys(names):
        rows = np.array([n == name for n in names])
        yield _symbol(key, name), {k: v[rows] for k, v in batch.items()}


def decode_message(key: bytes | None, value: bytes | None) -> list[tuple[str, Batch]]:
    """Every ``(symbol, batch)`` in a message: one bar for JSON, any number for Arrow IPC.
    Values are checked row by row only for JSON; an Arrow batch is checked by the live
    source's screening (the same checks, vectorized).

    >>> decode_message(b"X", b"[1, 2]")
    Traceback (most recent call last):
    ...
    connectors.live.bar_codec.BadMessage: expected a JSON object, got list
    """
    if value and value[:4] == _ARROW_STREAM_MAGIC:
        return list(_decode_arrow(key, value))
    return [decode_bar(key, value)]


def dead_letter(
    topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None, reason: str
) -> dict[str, Any]:
    """The JSON record sent to ``<topic>.dlq`` for a message that was not used.

    >>> dead_letter("bars", 0, 7, b"X", b"oops", "malformed JSON")["value"]
    'oops'
    """
    text: str | None
    try:
        text = value.decode() if value is not None else None
        encoding = "utf-8"
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(value or b"").decode(), "base64"
    return {
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "key": key.decode(errors="replace") if key is not None else None,
        "reason": reason,
        "value": text,
        "encoding": encoding,
    }
