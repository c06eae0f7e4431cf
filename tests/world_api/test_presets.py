"""The three policy presets: each is a valid policy that sets every field (but `promotion`:
stages are opt-in, a preset leaves them off), they are ordered from strict to loose, and a
world engine under each admits what its gates say."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from qmtl.core.contracts import MetricsUpdate
from world_api.domain.evaluator import WorldEngine
from world_api.domain.policy import Policy, PolicyError, parse_policy
from world_api.domain.presets import PRESETS, preset

ORDER = ["conservative", "balanced", "aggressive"]


@pytest.mark.parametrize("name", ORDER)
def test_each_preset_is_a_valid_policy_that_sets_every_field(name):
    policy = parse_policy(PRESETS[name])
    assert isinstance(policy, Policy) and policy == preset(name)
    assert set(yaml.safe_load(PRESETS[name])) == set(Policy.model_fields) - {"promotion"}
    assert policy.promotion is None  # a preset world decides no stages until asked to
    # it round-trips through the JSON a world stores
    assert Policy.model_validate_json(policy.model_dump_json()) == policy


def test_presets_go_from_strict_to_loose():
    p = [preset(n) for n in ORDER]
    assert [x.min_bars for x in p] == sorted((x.min_bars for x in p), reverse=True)
    assert [x.top_k for x in p] == sorted(x.top_k for x in p)
    assert [x.max_correlation for x in p] == sorted(x.max_correlation for x in p)
    assert [x.allocation.max_weight for x in p] == sorted(x.allocation.max_weight for x in p)
    assert [x.hysteresis.min_dwell_bars for x in p] == sorted(
        (x.hysteresis.min_dwell_bars for x in p), reverse=True)
    assert [x.gates["sharpe"].value for x in p] == sorted(
        (x.gates["sharpe"].value for x in p), reverse=True)


def _update(sid: str, sharpe: float, dd: float, n_bars: int) -> MetricsUpdate:
    rng = np.random.default_rng(abs(hash(sid)) % 2**32)
    return MetricsUpdate(world="w", strategy_id=sid, run_id="r", seq=1, mode="backtest",
                         as_of=1, n_bars=n_bars,
                         metrics={"sharpe": sharpe, "max_drawdown": dd, "win_rate": 0.5,
                                  "calmar": 1.0, "total_return": 0.3},
                         returns=[(i, float(r)) for i, r in
                                  enumerate(rng.normal(0.001, 0.01, 50))])


@pytest.mark.parametrize(("name", "admitted"), [
    ("conservative", {"strong"}),
    ("balanced", {"strong", "middling"}),
    ("aggressive", {"strong", "middling", "weak"}),
])
def test_an_engine_under_each_preset_admits_what_its_gates_say(name, admitted):
    engine = WorldEngine(preset(name))
    for sid, sharpe, dd in [("strong", 1.5, 0.1), ("middling", 0.8, 0.2),
                            ("weak", 0.5, 0.35), ("bad", 0.2, 0.6)]:
        engine.ingest(_update(sid, sharpe, dd, n_bars=1000))
    assert {v.strategy_id for v in engine.views() if v.status != "rejected"} == admitted
    assert {v.strategy_id for v in engine.views() if v.active} <= admitted


def test_unknown_preset():
    with pytest.raises(PolicyError, match="presets: conservative, balanced, aggressive"):
        preset("yolo")
