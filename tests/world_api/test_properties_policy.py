"""Property tests of ``PUT /worlds/{id}/policy`` on both stores (in process): random,
nested, extreme and non-finite policies, in JSON and in YAML, are answered 2xx or 4xx, never
5xx; after a 4xx everything a client reads of the world is byte-identical to before (nothing
half-stored); after a 2xx the stored policy is the one sent, as the parser reads it."""

from __future__ import annotations

import os

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.world_api.hardening import assert_refused_cleanly, dumps, snapshot, world_client
from world_api.domain.policy import PolicyError, parse_policy

__all__ = ["world_client"]  # the fixture, used by name

EXAMPLES = int(os.environ.get("QMTL_PROPERTY_EXAMPLES", "20"))
"""Examples per test and backend: 20 keeps the file to seconds; set more to search deeper."""
PROPS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
FEW = settings(PROPS, max_examples=max(EXAMPLES // 3, 5))

METRICS = ["sharpe", "max_drawdown", "sortino", "linearity", "total_return", "nope"]
EXTREME = st.one_of(
    st.floats(),  # NaN, ±inf, subnormals, ±1.8e308
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, -1, 0.5, 1e-320, 1e308, 2**63, -(2**63) - 1, 10**30]),
    st.none(), st.booleans(), st.text(max_size=8),
)
PLAUSIBLE = st.sampled_from([0, 1, 2, 3, 0.5, 0.1, 0.9, 100])



def sections(value: st.SearchStrategy, count: st.SearchStrategy, metrics: list[str],
             gates: list[str], ops: list[str]) -> dict:
    """A strategy per policy section, its numbers drawn from ``value`` (counts from
    ``count``)."""
    gate = st.one_of(st.sampled_from(gates),
                     st.fixed_dictionaries({"op": st.sampled_from(ops),
                                            "value": value}))
    return {
        "min_bars": count,
        "gates": st.dictionaries(st.sampled_from(metrics), gate, max_size=3),
        "score": st.dictionaries(st.sampled_from(metrics), value, max_size=3),
        "top_k": count,
        "max_correlation": value,
        "hysteresis": st.fixed_dictionaries({}, optional={"margin": value,
                                                          "min_dwell_bars": count}),
        "allocation": st.fixed_dictionaries({}, optional={
            "method": st.sampled_from(["equal", "inverse_vol", "score", "risk_parity", "hrp",
                                       "x"]),
            "max_weight": value, "min_change": value}),
        "unknown": value,
    }


HOSTILE = sections(EXTREME | PLAUSIBLE, EXTREME | PLAUSIBLE, METRICS, [
    ">= 0.8", "<= 0.25", "> 1e999", ">= -1e999", "== nan", "< .inf", ">= 1e308", "!= 0", ">=",
    "0.5", ">= 1 2", ">= ∞"], [">=", "<", "=>", ""])
CLEAN = sections(st.sampled_from([0.1, 0.5, 0.9]), st.sampled_from([1, 2, 50]), METRICS[:-1],
                 [">= 0.5", "<= 0.25", "> -1", "!= 0"], [">=", "<"])
NESTED = st.recursive(EXTREME, lambda x: st.lists(x, max_size=3)
                      | st.dictionaries(st.sampled_from(METRICS), x, max_size=3), max_leaves=20)


@st.composite
def policies(draw) -> dict:
    """A policy document: a random subset of sections, each plausible or hostile, and now
    and then a section replaced by arbitrary nesting. Half are "clean" (plausible numbers,
    known metrics), so that acceptance is exercised as well as refusal."""
    clean = draw(st.booleans())
    pick = CLEAN if clean else HOSTILE
    names = sorted(k for k in pick if not (clean and k == "unknown"))
    keys = draw(st.lists(st.sampled_from(names), unique=True, max_size=6))
    doc = {k: draw(pick[k]) for k in keys}
    if keys and not clean and draw(st.integers(0, 4)) == 0:
        doc[keys[0]] = draw(NESTED)
    return doc


def check_put(client, body: str) -> None:
    before = snapshot(client)
    r = client.put("/worlds/w1/policy", content=body)
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code >= 400:
        assert_refused_cleanly(client, r, before)
        return
    try:
        expected = parse_policy(body)
    except PolicyError as exc:  # the service took what the parser refuses
        raise AssertionError(f"accepted a policy the parser refuses: {exc}") from None
    stored = client.get("/worlds/w1/policy").json()
    assert stored["version"] == r.json()["version"]
    assert stored["policy"] == expected.model_dump(mode="json")


@PROPS
@given(policies())
def test_json_policies(world_client, doc):
    check_put(world_client, dumps(doc))


@PROPS
@given(policies())
def test_yaml_policies(world_client, doc):
    check_put(world_client, yaml.safe_dump(doc, allow_unicode=True))


@FEW
@given(st.integers(min_value=1, max_value=2000), st.sampled_from(["json", "flow", "block"]))
def test_nesting_of_any_depth(world_client, depth, style):
    if style == "json":
        body = '{"score": ' + '{"a": ' * depth + "1" + "}" * depth + "}"
    elif style == "flow":
        body = "score: " + "[" * depth + "]" * depth
    else:
        body = "score:\n" + "".join("  " * i + "- \n" for i in range(1, min(depth, 600)))
    check_put(world_client, body)


@PROPS
@given(st.binary(max_size=300))
def test_random_bodies(world_client, raw):
    before = snapshot(world_client)
    r = world_client.put("/worlds/w1/policy", content=raw)
    assert r.status_code < 500, (r.status_code, r.text)
    if r.status_code >= 400:
        assert_refused_cleanly(world_client, r, before)


def test_the_world_still_takes_a_valid_policy(world_client):
    r = world_client.put("/worlds/w1/policy", json={"top_k": 1, "min_bars": 1})
    assert r.status_code == 200
    assert world_client.get("/worlds/w1/policy").json()["policy"]["top_k"] == 1
