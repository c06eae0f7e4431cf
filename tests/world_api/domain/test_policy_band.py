"""A gate may be a band ``[low, high]`` (both ends included): the turnover band of a desk
(``turnover: [2.5, 175]``: QMTL's turnover is annualized, so 0.01 to 0.7 of the book a bar
at 252 bars a year). It survives the policy's JSON round trip, fails outside the band with a
hint naming it, and a malformed band is refused naming the metric."""

from __future__ import annotations

import json
import math

import pytest

from world_api.domain.policy import PolicyError, parse_policy
from world_api.domain.scoring import gate_failures


def test_a_turnover_band_admits_inside_and_says_why_outside() -> None:
    policy = parse_policy("gates: {turnover: [2.52, 176.4], sharpe: '>= 0.5'}")
    ok = {"turnover": 50.0, "sharpe": 1.0}
    assert gate_failures(policy, 1000, ok) == []
    assert gate_failures(policy, 1000, {**ok, "turnover": 2.52}) == []  # ends included
    assert gate_failures(policy, 1000, {**ok, "turnover": 300.0}) == [
        "turnover 300 outside the band [2.52, 176.4]"]
    assert gate_failures(policy, 1000, {**ok, "turnover": 1.0}) == [
        "turnover 1 outside the band [2.52, 176.4]"]
    assert gate_failures(policy, 1000, {**ok, "turnover": math.nan})  # NaN never passes


def test_a_band_survives_the_stored_json() -> None:
    policy = parse_policy({"gates": {"turnover": [2.5, 175]}})
    back = parse_policy(json.loads(policy.model_dump_json()))
    assert back.gates["turnover"] == policy.gates["turnover"]
    assert str(back.gates["turnover"]) == "[2.5, 175]"


@pytest.mark.parametrize("band", ["[3, 1]", "[1]", "[1, .inf]", "[true, 2]"])
def test_a_malformed_band_is_refused(band: str) -> None:
    with pytest.raises(PolicyError, match="turnover: bad band"):
        parse_policy(f"gates: {{turnover: {band}}}")
