"""The policy loader fuzzed with hypothesis: whatever YAML or JSON text (or bytes decoded
as the service decodes a body) it is given, :func:`parse_policy` returns a
:class:`Policy` or raises :class:`PolicyError` with a message; never another exception.
A Policy it returns holds only finite numbers and survives a dump and a reload."""

from __future__ import annotations

import json
import math

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qmtl.core.contracts import METRIC_NAMES
from world_api.domain.policy import Policy, PolicyError, parse_policy

FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))

KEYS = ["min_bars", "gates", "score", "top_k", "max_correlation", "hysteresis", "allocation",
        "margin", "min_dwell_bars", "method", "max_weight", "min_change", "op", "value",
        *METRIC_NAMES[:4], "x"]
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(), st.text(max_size=12),
    st.sampled_from([">= 0.8", "<= 1e999", "> -1e-400", "== nan", ">= .inf", "!= 0", "equal",
                     "hrp", ".nan", "-.inf", "1e308", "   ", "\x00"]),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from(KEYS), inner,
                                                                 max_size=5),
    max_leaves=25,
)
DOCS = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), VALUES, max_size=7)
YAML_CHARS = st.text(alphabet=st.sampled_from(list("{}[]:,-'\"!&*|>#%@ \n\t.0123456789e+"
                                                   "abcnfi<=\x00\x85\ufeff")), max_size=120)


def check(text: str) -> None:
    try:
        policy = parse_policy(text)
    except PolicyError as exc:
        assert str(exc)
        return
    assert isinstance(policy, Policy)
    dumped = policy.model_dump(mode="json")
    numbers = [v for v in _leaves(dumped) if isinstance(v, float)]
    assert all(math.isfinite(v) for v in numbers), dumped
    assert parse_policy(json.dumps(dumped, allow_nan=False)) == policy


def _leaves(data):
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        else:
            yield item


@FUZZ
@given(DOCS)
def test_json_documents_give_a_policy_or_a_policy_error(doc):
    check(json.dumps(doc))  # allow_nan: NaN and Infinity as JSON's common extension


@FUZZ
@given(DOCS)
def test_yaml_documents_give_a_policy_or_a_policy_error(doc):
    check(yaml.safe_dump(doc, allow_unicode=True))


@FUZZ
@given(YAML_CHARS)
def test_yaml_ish_text_gives_a_policy_or_a_policy_error(text):
    check(text)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes_give_a_policy_or_a_policy_error(raw):
    check(raw.decode("utf-8", errors="replace"))  # as PUT /worlds/{id}/policy decodes


@settings(FUZZ, max_examples=30)
@given(st.integers(min_value=1, max_value=400), st.sampled_from(["json", "flow", "block"]))
def test_any_nesting_depth_gives_a_policy_or_a_policy_error(depth, style):
    if style == "json":
        text = '{"score": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
    elif style == "flow":
        text = "score: " + "[" * depth + "]" * depth
    else:
        text = "score:\n" + "".join("  " * i + "- \n" for i in range(1, depth))
    check(text)
