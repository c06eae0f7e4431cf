"""The bar codec fuzzed with hypothesis: whatever key and value a topic holds,
:func:`decode_message` returns bars that pass its documented checks or raises
:class:`BadMessage` (what the live source sends to the dead-letter topic); never another
exception. And :func:`dead_letter` can always describe the message as JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.live.bar_codec import BadMessage, dead_letter, decode_message, encode_arrow
from qmtl.core.contracts import BAR_COLUMNS

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))

KEYS = st.none() | st.binary(max_size=8) | st.sampled_from([b"AAPL", b"\xff\xfe", b""])
NUMBERS = st.one_of(st.integers(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.floats(), st.booleans(), st.none(), st.text(max_size=4),
                    st.lists(st.integers(), max_size=2))
FIELDS = st.sampled_from([*BAR_COLUMNS, "symbol", "extra"])


def check(key: bytes | None, value: bytes | None) -> None:
    try:
        decoded = decode_message(key, value)
    except BadMessage as exc:
        assert str(exc)
        json.dumps(dead_letter("bars", 0, 1, key, value, str(exc)))
        return
    for symbol, bar in decoded:
        assert isinstance(symbol, str) and symbol
        assert bar["ts"].dtype == np.int64
        assert {len(bar[c]) for c in BAR_COLUMNS} == {len(bar["ts"])}


@FUZZ
@given(KEYS, st.binary(max_size=300))
def test_random_bytes(key, value):
    check(key, value)


@FUZZ
@given(KEYS, st.binary(max_size=200))
def test_bytes_after_the_arrow_magic(key, value):
    check(key, b"\xff\xff\xff\xff" + value)


@FUZZ
@given(KEYS, st.dictionaries(FIELDS, NUMBERS, max_size=8))
def test_random_json_objects(key, doc):
    value = json.dumps(doc).encode()  # NaN and Infinity included, as Python writes them
    try:
        [(symbol, bar)] = decode_message(key, value)
    except BadMessage:
        return
    # what is accepted is exactly what the documented checks allow
    assert isinstance(doc["ts"], int) and not isinstance(doc["ts"], bool)
    assert -(2**63) <= doc["ts"] < 2**63 and bar["ts"].tolist() == [doc["ts"]]
    assert symbol == doc.get("symbol", key.decode() if key else None)
    for c in BAR_COLUMNS[1:]:
        v = doc[c]
        assert isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
        assert (v >= 0) if c == "volume" else (v > 0)
        assert bar[c].tolist() == [float(v)]


@FUZZ
@given(KEYS, st.recursive(NUMBERS, lambda x: st.lists(x, max_size=3)
                          | st.dictionaries(st.text(max_size=3), x, max_size=3), max_leaves=12))
def test_random_json_values(key, doc):
    check(key, json.dumps(doc).encode())


@FUZZ
@given(KEYS, st.integers(min_value=0, max_value=4), st.data())
def test_truncated_and_corrupted_arrow_streams(key, n, data):
    batch = {"ts": np.arange(n, dtype=np.int64)} | {c: np.ones(n) for c in BAR_COLUMNS[1:]}
    raw = bytearray(encode_arrow(batch, symbol=data.draw(st.none() | st.just("X"))))
    cut = data.draw(st.integers(min_value=0, max_value=len(raw)))
    flips = data.draw(st.lists(st.tuples(st.integers(0, len(raw) - 1), st.integers(0, 255)),
                               max_size=4))
    for i, b in flips:
        raw[i] = b
    check(key, bytes(raw[:max(cut, 4)]))


def test_an_arrow_batch_with_wrong_types_is_a_bad_message():
    sink = pa.BufferOutputStream()
    table = pa.table({"ts": ["a"], **{c: ["x"] for c in BAR_COLUMNS[1:]}})
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    check(b"X", sink.getvalue().to_pybytes())


def test_found_by_the_fuzz_any_zeroed_byte_of_an_arrow_stream_is_a_bad_message():
    """Was ArrowNotImplementedError ("Integers with less than 8 bits") out of the codec for
    a stream whose schema a flipped byte had turned into an odd type."""
    batch = {"ts": np.arange(4, dtype=np.int64)} | {c: np.ones(4) for c in BAR_COLUMNS[1:]}
    raw = encode_arrow(batch, symbol="X")
    for i in range(4, len(raw)):
        for b in (0, 1, 0xFF):
            check(b"X", raw[:i] + bytes([b]) + raw[i + 1:])
