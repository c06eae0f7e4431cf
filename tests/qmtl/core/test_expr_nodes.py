"""Node ids are part of saved state (a live run's recovery snapshot keys kernel state by
node id): pinned here, so a change to how ids are computed cannot pass unnoticed."""

from __future__ import annotations

import math

import pytest

from qmtl import ind
from qmtl.core.expr import col
from qmtl.core.expr_nodes import canonical, content_id, own_lookback, positive_window


def test_node_ids_are_the_ones_saved_states_know():
    c = col("close")
    assert c.sma(10).id == "9344901b7a4ef020e169"
    assert c.rsi(14).id == "8351059b53555a52cc01"
    assert ind.atr(col("high"), col("low"), c, 14).id == "5075091ba0547f356c74"
    assert c.macd().hist.id == "6c7789e5f853eb5b824b"
    assert c.rolling(3).apply(len).id == "19ac2f169eaaea0b5b53"


def test_canonical_floats_are_exact_and_tell_nan_from_inf():
    assert canonical(0.1) == "0.1" and canonical(0.1 + 0.2) == "0.30000000000000004"
    assert canonical(math.nan) != canonical(math.inf)
    assert content_id("const", {"value": 1.0}, []) != content_id("const", {"value": 1}, [])


def test_lookback_and_window_checks():
    assert own_lookback("ema", {"n": 5}) == 4 and own_lookback("where", {}) == 0
    with pytest.raises(ValueError, match="ema: window must be a positive integer, got True"):
        positive_window("ema", True)
