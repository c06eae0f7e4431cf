"""Silence costs capital (issue 24 §4): a paper or live strategy whose run stops reporting
past ``max_silence`` loses its weight, with an event and a hint, and gets it back when it
reports again; on a fixed clock the tests set."""

from __future__ import annotations

import pytest

from qmtl.core.contracts import MetricsUpdate
from world_api.domain.evaluator import WorldEngine
from world_api.domain.policy import PolicyError, parse_policy

S = 10**9
MIN = 60 * S


class Clock:
    """The world's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1_000 * S

    def __call__(self) -> int:
        return self.now


def engine(policy: str) -> tuple[WorldEngine, Clock]:
    eng, clock = WorldEngine(parse_policy(policy)), Clock()
    eng.clock = clock
    return eng, clock


def upd(sid, seq, mode="paper", run="p", t0=0, n=1):
    rets = [((t0 + i) * MIN, 0.001 * ((-1) ** i)) for i in range(n)]
    return MetricsUpdate(
        world="w",
        strategy_id=sid,
        run_id=run,
        seq=seq,
        mode=mode,
        as_of=seq,
        n_bars=seq * n,
        metrics={"sharpe": 1.0},
        returns=rets,
    )


def test_a_silent_paper_run_loses_its_weight_and_gets_it_back():
    eng, clock = engine("max_silence: 120\ntop_k: 2")
    eng.ingest(upd("a", 1))
    eng.ingest(upd("b", 1, run="q"))
    assert eng.weights() == {"a": 0.5, "b": 0.5}
    clock.now += 100 * S
    eng.ingest(upd("b", 2, run="q", t0=1))  # b keeps reporting
    clock.now += 20 * S
    assert eng.tick(clock.now) == []  # a: 120 s, not more
    clock.now += 192 * S
    out = eng.tick(clock.now)
    reasons = {c.strategy_id: (c.active, c.weight, c.reason) for c in out}
    assert reasons["a"] == (False, 0.0, "deactivated: no update for 312 s > max_silence 120 s")
    # b is silent for 212 s too: it also goes
    assert reasons["b"][:2] == (False, 0.0)
    assert eng.weights() == {}
    clock.now += 10 * S
    eng.tick(clock.now)
    view = eng.view("a")
    assert view.status == "rejected" and view.hints == ["no update for 322 s > max_silence 120 s"]
    # a reports again: eligible at once, its weight back
    out = eng.ingest(upd("a", 2, t0=2))
    assert [(c.strategy_id, c.active, c.weight) for c in out] == [("a", True, 1.0)]
    assert eng.view("a").hints == []


def test_max_silence_in_bars_of_the_strategy_interval():
    eng, clock = engine("max_silence: 3 bars")
    eng.ingest(upd("a", 1, n=5))  # 1-minute bars
    clock.now += 3 * MIN
    assert eng.tick(clock.now) == []
    clock.now += 1 * MIN
    out = eng.tick(clock.now)
    assert [c.reason for c in out] == [
        "deactivated: no update for 240 s (4 bars) > max_silence 3 bars (180 s)"
    ]


def test_backtests_and_backtest_stage_strategies_are_never_silent():
    eng, clock = engine("max_silence: 10\npromotion: {paper: {min_bars: 5}}")
    eng.ingest(upd("bt", 1, mode="backtest", n=3))  # stays in backtest: 3 < 5 bars
    eng.ingest(upd("bt", 1, mode="paper", run="early"))  # paper run of a backtest-stage one
    clock.now += 3_600 * S
    assert eng.tick(clock.now) == []
    assert eng.view("bt").active


def test_no_max_silence_no_cost_and_a_dropped_limit_gives_the_weight_back():
    eng, clock = engine("top_k: 1")
    eng.ingest(upd("a", 1))
    clock.now += 10**6 * S
    assert eng.tick(clock.now) == []
    eng.set_policy(parse_policy("max_silence: 60"), 2)
    assert [c.active for c in eng.tick(clock.now)] == [False]
    eng.set_policy(parse_policy("top_k: 1"), 3)
    assert [c.active for c in eng.tick(clock.now)] == [True]


def test_silence_survives_a_snapshot():
    eng, clock = engine("max_silence: 60")
    eng.ingest(upd("a", 1))
    clock.now += 61 * S
    eng.tick(clock.now)
    back = WorldEngine.from_state(eng.to_state())
    assert not back.view("a").active
    assert back.view("a").hints == ["no update for 61 s > max_silence 60 s"]


@pytest.mark.parametrize("bad", ["0", "-5", "'three bars'", "'5 minutes'", "true"])
def test_a_bad_max_silence_is_refused_with_the_field(bad):
    with pytest.raises(PolicyError, match="max_silence"):
        parse_policy(f"max_silence: {bad}")
