"""A spec carries the strategy's calendar and execution settings: a strategy rebuilt from its
spec (by a runner, or a world that evaluates it) trades as the one that was tested."""

from __future__ import annotations

import pytest

from qmtl import Strategy, from_spec
from qmtl.alpha.graph import SpecError
from qmtl.strategy import EXECUTION_SETTINGS


class Up(Strategy):
    symbols = ["SPY"]
    execution = "next_open"
    spread_bps = 3.0
    lot_size = {"SPY": 1.0}
    calendar = "XNYS"

    def signal(self, bars):
        return bars.close > bars.close.sma(5)


def test_execution_settings_round_trip_through_the_spec():
    spec = Up().to_spec()
    back = from_spec(spec)
    for key in ("calendar", *EXECUTION_SETTINGS):
        assert getattr(back, key) == getattr(Up(), key), key
    assert back.execution_settings() == Up().execution_settings()
    assert back.target().id == Up().target().id


def test_a_default_strategy_s_spec_has_no_execution_keys():
    class Plain(Up):
        execution = "close"
        spread_bps = 0.0
        lot_size = 0.0
        calendar = None

    assert not set(Plain().to_spec()) & {"calendar", *EXECUTION_SETTINGS}


def test_a_bad_execution_setting_in_a_spec_is_refused_naming_it():
    spec = {**Up().to_spec(), "execution": "at_lunch"}
    with pytest.raises(SpecError, match="execution"):
        from_spec(spec)
