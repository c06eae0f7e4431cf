"""Trades on the wire: one JSON object per trade (or an Arrow IPC batch), keyed by symbol.

A trade message's key is the symbol (UTF-8); its value is JSON::

    {"ts": 1704153600123000000, "price": 42000.5, "size": 0.25, "side": "buy", "id": "91734"}

``ts`` is the trade's time in int64 nanoseconds UTC, ``price`` finite and > 0, ``size``
finite and >= 0; ``side`` (``buy`` or ``sell``) and ``id`` (text or an integer: a repeated
id is the same trade delivered again) are optional. A ``"symbol"`` field may repeat the key
or stand in for it. For bulk feeds the value may be an Arrow IPC stream with int64 ``ts``,
float ``price`` and ``size`` columns and optional ``id``, ``side`` and ``symbol`` columns.
Anything else raises :class:`~connectors.live.bar_codec.BadMessage` (a dead letter).

>>> symbol, t = decode_trades(b"BTC/USDT", encode_trade({"ts": 5, "price": 2.0, "size": 1.0,
...                                                        "id": 7}))[0]
>>> symbol, t["ts"].tolist(), t["id"].tolist()
('BTC/USDT', [5], ['7'])
>>> decode_trades(b"X", b'{"ts": 5, "price": -1, "size": 1}')
Traceback (most recent call last):
...
connectors.live.bar_codec.BadMessage: field 'price' must be > 0, got -1.0
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pyarrow as pa

from connectors.live.bar_codec import _ARROW_STREAM_MAGIC, BadMessage, _symbol, arrow_stream
from qmtl.core.bars import Batch

SIDES = ("buy", "sell")


def encode_trade(trade: Mapping[str, Any], symbol: str | None = None) -> bytes:
    """The JSON value of one trade (``symbol`` adds the optional field).

    >>> encode_trade({"ts": 1, "price": 2, "size": 3})
    b'{"ts": 1, "price": 2.0, "size": 3.0}'
    """
    doc: dict[str, Any] = {
        "ts": int(trade["ts"]),
        "price": float(trade["price"]),
        "size": float(trade["size"]),
    }
    for k in ("side", "id"):
        if trade.get(k) is not None:
            doc[k] = trade[k] if isinstance(trade[k], int) else str(trade[k])
    if symbol is not None:
        doc["symbol"] = symbol
    return json.dumps(doc).encode()


def encode_trades_arrow(trades: Mapping[str, Any], symbol: str | None = None) -> bytes:
    """An Arrow IPC stream of trades (``symbol`` adds the column).

    >>> b = encode_trades_arrow({"ts": [1, 2], "price": [1.0, 2.0], "size": [1.0, 1.0]})
    >>> decode_trades(b"X", b)[0][1]["price"].tolist()
    [1.0, 2.0]
    """
    cols = {
        "ts": pa.array(np.asarray(trades["ts"], dtype=np.int64)),
        "price": pa.array(np.asarray(trades["price"], dtype=np.float64)),
        "size": pa.array(np.asarray(trades["size"], dtype=np.float64)),
    }
    for k in ("id", "side"):
        if trades.get(k) is not None:
            cols[k] = pa.array([None if v is None else str(v) for v in trades[k]], pa.string())
    return arrow_stream(cols, symbol)


def _number(doc: dict[str, Any], c: str) -> float:
    v = doc.get(c)
    if v is None:
        raise BadMessage(f"missing field {c!r}")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise BadMessage(f"field {c!r} must be a number, got {v!r}")
    v = float(v)
    if not math.isfinite(v):
        raise BadMessage(f"field {c!r} is not finite ({v})")
    if (v <= 0) if c == "price" else (v < 0):
        raise BadMessage(f"field {c!r} must be {'> 0' if c == 'price' else '>= 0'}, got {v}")
    return v


def _json_trade(key: bytes | None, value: bytes) -> tuple[str, Batch]:
    try:
        doc = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadMessage(f"malformed JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise BadMessage(f"expected a JSON object, got {type(doc).__name__}")
    symbol = _symbol(key, doc.get("symbol"))
    ts = doc.get("ts")
    if ts is None:
        raise BadMessage("missing field 'ts'")
    if isinstance(ts, bool) or not isinstance(ts, int) or not -(2**63) <= ts < 2**63:
        raise BadMessage(f"field 'ts' must be an int64 (ns since the epoch), got {ts!r}")
    price, size = _number(doc, "price"), _number(doc, "size")
    side = doc.get("side")
    if side is not None and side not in SIDES:
        raise BadMessage(f"field 'side' must be buy or sell, got {side!r}")
    tid = doc.get("id")
    if tid is not None and (isinstance(tid, bool) or not isinstance(tid, (str, int))):
        raise BadMessage(f"field 'id' must be text or an integer, got {tid!r}")
    return symbol, {
        "ts": np.array([ts], dtype=np.int64),
        "price": np.array([price]),
        "size": np.array([size]),
        "id": np.array(["" if tid is None else str(tid)], dtype=object),
    }


def _arrow_trades(key: bytes | None, value: bytes) -> list[tuple[str, Batch]]:
    try:
        table = pa.ipc.open_stream(value).read_all()
        table.validate(full=True)
        names = table.column_names
    except (pa.ArrowException, OSError, UnicodeDecodeError) as exc:
        raise BadMessage(f"unreadable Arrow IPC stream: {exc}") from None
    for c in ("ts", "price", "size"):
        if c not in names:
            raise BadMessage(f"Arrow batch lacks column {c!r}")
    if not pa.types.is_integer(table.schema.field("ts").type):
        raise BadMessage(f"Arrow column 'ts' must be int64 ns, got {table.schema.field('ts').type}")
    try:
        batch: Batch = {
            "ts": table.column("ts").cast(pa.int64()).to_numpy(),
            "price": table.column("price").cast(pa.float64()).to_numpy(),
            "size": table.column("size").cast(pa.float64()).to_numpy(),
        }
    except pa.ArrowException as exc:
        raise BadMessage(f"Arrow batch has a non-numeric trade column: {exc}") from None
    bad = ~(
        np.isfinite(batch["price"])
        & (batch["price"] > 0)
        & np.isfinite(batch["size"])
        & (batch["size"] >= 0)
    )
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise BadMessage(
            f"Arrow row {i}: price must be > 0 and size >= 0, finite "
            f"(got {batch['price'][i]}, {batch['size'][i]})"
        )
    ids = table.column("id").to_pylist() if "id" in names else [None] * len(batch["ts"])
    batch["id"] = np.array(["" if v is None else str(v) for v in ids], dtype=object)
    if "symbol" not in names:
        return [(_symbol(key, None), batch)]
    symbols = table.column("symbol").to_pylist()
    out = []
    for name in dict.fromkeys(symbols):
        rows = np.array([n == name for n in symbols])
        out.append((_symbol(key, name), {k: v[rows] for k, v in batch.items()}))
    return out


def decode_trades(key: bytes | None, value: bytes | None) -> list[tuple[str, Batch]]:
    """Every ``(symbol, trades)`` in a message: columns ``ts``, ``price``, ``size``, ``id``
    (``""`` when none); one trade for JSON, any number for Arrow IPC.

    >>> decode_trades(b"X", b'{"ts": 1, "price": 1, "size": 1, "side": "hold"}')
    Traceback (most recent call last):
    ...
    connectors.live.bar_codec.BadMessage: field 'side' must be buy or sell, got 'hold'
    """
    if not value:
        raise BadMessage("empty message")
    if value[:4] == _ARROW_STREAM_MAGIC:
        return _arrow_trades(key, value)
    return [_json_trade(key, value)]
