"""Bar messages: JSON and Arrow IPC in, bars or a reason out."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.live.bar_codec import (
    BAR_JSON_SCHEMA,
    BadMessage,
    dead_letter,
    decode_bar,
    decode_message,
    encode_arrow,
    encode_bar,
)

GOOD = {"ts": 1_704_153_600_000_000_000, "open": 100.0, "high": 101.5, "low": 99.2,
        "close": 100.7, "volume": 12_000.0}


def doc(**changes):
    d = {**GOOD, **changes}
    return json.dumps({k: v for k, v in d.items() if v is not ...}).encode()


@settings(max_examples=200, deadline=None)
@given(
    st.integers(-(2**62), 2**62),
    st.lists(st.floats(1e-9, 1e12), min_size=4, max_size=4),
    st.floats(0.0, 1e12),
)
def test_json_round_trip_is_exact(ts, prices, volume):
    bar = {"ts": ts, **dict(zip(("open", "high", "low", "close"), prices, strict=True)),
           "volume": volume}
    symbol, got = decode_bar(b"SYM", encode_bar(bar))
    assert symbol == "SYM"
    assert {k: v[0].item() for k, v in got.items()} == bar
    assert got["ts"].dtype == np.int64 and got["close"].dtype == np.float64


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"A", b"", "empty message"),
        (b"A", b"{not json", "malformed JSON"),
        (b"A", b"[1, 2]", "expected a JSON object, got list"),
        (b"A", doc(high=...), "missing field 'high'"),
        (b"A", doc(ts=1.5), "field 'ts' must be an integer"),
        (b"A", doc(ts=True), "field 'ts' must be an integer"),
        (b"A", doc(ts="2024-01-01"), "field 'ts' must be an integer"),
        (b"A", doc(ts=2**64), "does not fit in int64"),
        (b"A", doc(close="1.0"), "field 'close' must be a number"),
        (b"A", doc(close=-1.0), "field 'close' must be > 0"),
        (b"A", doc(low=0.0), "field 'low' must be > 0"),
        (b"A", doc(volume=-5), "field 'volume' must be >= 0"),
        (b"A", b'{"ts": 1, "open": NaN, "high": 1, "low": 1, "close": 1, "volume": 1}',
         "field 'open' is not finite"),
        (b"A", doc(symbol="B"), "disagrees with the key"),
        (None, doc(), "no symbol"),
        (b"\xff", doc(), "key is not UTF-8"),
    ],
)
def test_bad_messages_say_why(key, value, reason):
    with pytest.raises(BadMessage, match=reason):
        decode_message(key, value)


def test_symbol_may_come_from_the_value_and_extra_fields_are_ignored():
    symbol, bar = decode_bar(None, doc(symbol="MSFT", vwap=3.0))
    assert symbol == "MSFT" and bar["close"][0] == 100.7


def test_arrow_batches_carry_many_bars_and_symbols():
    n = 5
    batch = {"ts": np.arange(n, dtype=np.int64), **{c: np.arange(1.0, n + 1) for c in
             ("open", "high", "low", "close", "volume")}}
    [(s, got)] = decode_message(b"X", encode_arrow(batch))
    assert s == "X" and all(np.array_equal(got[k], batch[k]) for k in batch)
    both = decode_message(None, encode_arrow(batch, symbol="A")) + decode_message(
        None, encode_arrow(batch, symbol="B"))
    assert [s for s, _ in both] == ["A", "B"]
    with pytest.raises(BadMessage, match="unreadable Arrow IPC"):
        decode_message(b"X", encode_arrow(batch)[:40])


def test_the_documented_schema_names_every_required_field():
    assert BAR_JSON_SCHEMA["required"] == ["ts", "open", "high", "low", "close", "volume"]
    assert BAR_JSON_SCHEMA["properties"]["ts"]["type"] == "integer"


def test_dead_letters_keep_binary_values_readable():
    rec = dead_letter("bars", 2, 9, b"A", b"\xff\x00", "malformed JSON")
    assert (rec["partition"], rec["offset"], rec["encoding"], rec["value"]) == (
        2, 9, "base64", "/wA=")
