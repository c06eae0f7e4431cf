"""Policy validation: errors name the field and the reason; YAML and JSON agree."""

from __future__ import annotations

import pytest

from world_api.domain.policy import PolicyError, parse_policy


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("gates: {sharpee: '>= 1'}", "gates: sharpee: unknown metric"),
        ("gates: {sharpe: '=> 1'}", "gates: sharpe: bad comparison '=> 1'"),
        ("score: {sharpe: 0}", "score: needs at least one metric with a non-zero weight"),
        ("top_k: 0", "top_k: Input should be greater than or equal to 1"),
        ("max_correlation: 1.5", "max_correlation: Input should be less than or equal to 1"),
        ("allocation: {method: magic}", "allocation.method: Input should be"),
        ("allocation: {max_weight: 0}", "allocation.max_weight: Input should be greater than 0"),
        ("colour: red", "colour: Extra inputs are not permitted"),
        ("- 1\n- 2", "policy must be a mapping"),
    ],
)
def test_invalid_policies_name_field_and_reason(text, message):
    with pytest.raises(PolicyError, match=message.replace("(", r"\(")):
        parse_policy(text)


def test_json_and_yaml_give_the_same_policy():
    y = parse_policy("top_k: 3\ngates: {sharpe: '>= 0.8'}\nallocation: {method: hrp}")
    j = parse_policy('{"top_k": 3, "gates": {"sharpe": ">= 0.8"}, "allocation": {"method": "hrp"}}')
    assert y == j
    assert parse_policy("") == parse_policy("{}")
