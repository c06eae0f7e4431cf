"""Stage rules (``world_api.domain.stages``) and the ``promotion`` section of the policy."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as hs

from qmtl.core.contracts import MetricsUpdate
from world_api.domain.evaluator import WorldEngine
from world_api.domain.policy import PolicyError, Promotion, parse_policy
from world_api.domain.records import Records
from world_api.domain.stages import (
    NotAwaitingApproval,
    StageState,
    approve,
    approve_in,
    decide,
)

ISSUE_YAML = """
promotion:
  paper: {min_bars: 500, gates: {sharpe: ">= 0.8"}}
  live:  {min_paper_bars: 200, gates: {sharpe: ">= 0.5", max_drawdown: "<= 0.2"},
          approval: operator}
  demote: {max_drawdown: "> 0.3"}
"""


def rules(**kw) -> Promotion:
    return parse_policy(ISSUE_YAML).promotion.model_copy(update=kw)  # type: ignore[union-attr]


def test_the_issue_yaml_parses_and_round_trips():
    p = parse_policy(ISSUE_YAML)
    assert p.promotion is not None
    assert p.promotion.paper.min_bars == 500 and p.promotion.live.min_paper_bars == 200
    assert str(p.promotion.live.gates["max_drawdown"]) == "<= 0.2"
    assert p.promotion.live.approval == "operator"
    assert str(p.promotion.demote["max_drawdown"]) == "> 0.3"
    again = parse_policy(p.model_dump(mode="json"))
    assert again == p
    assert parse_policy("top_k: 3").promotion is None  # no section: stages not managed


@pytest.mark.parametrize("text, message", [
    ("promotion: {live: {approval: maybe}}",
     "promotion.live.approval: Input should be 'operator' or 'auto'"),
    ("promotion: {paper: {gates: {sharpee: '>= 1'}}}", "promotion.paper.gates: sharpee: unknown"),
    ("promotion: {demote: {max_drawdown: '~ 0.3'}}", "promotion.demote: max_drawdown: bad comp"),
    ("promotion: {paper: {min_bars: -1}}", "promotion.paper.min_bars: Input should be greater"),
    ("promotion: {live: {min_bars: 5}}", "promotion.live.min_bars: Extra inputs"),
    ("promotion: {papr: {}}", "promotion.papr: Extra inputs are not permitted"),
    ("promotion: [1]", "promotion: Input should be a valid dictionary"),
])
def test_bad_promotion_sections_say_where(text, message):
    with pytest.raises(PolicyError) as err:
        parse_policy(text)
    assert str(err.value).startswith(message), str(err.value)


def test_backtest_record_promotes_to_paper_and_paper_record_to_live():
    r, st = rules(), StageState()
    st.record("backtest", "bt", 499, {"sharpe": 2.0})
    assert decide(r, st) == [] and st.stage == "backtest"  # 499 bars < 500
    st.record("backtest", "bt", 600, {"sharpe": 0.7})
    assert decide(r, st) == []  # sharpe below the paper gate
    st.record("backtest", "bt", 600, {"sharpe": 0.9})
    [move] = decide(r, st)
    assert (move.frm, move.to, st.stage) == ("backtest", "paper", "paper")
    # a great backtest record does not promote to live: only the paper record counts
    st.record("backtest", "bt2", 5000, {"sharpe": 3.0, "max_drawdown": 0.01})
    assert decide(r, st) == [] and not st.pending
    st.record("paper", "p1", 150, {"sharpe": 0.6, "max_drawdown": 0.1})
    assert decide(r, st) == [] and not st.pending  # 150 paper bars < 200
    st.record("paper", "p2", 60, {"sharpe": 0.6, "max_drawdown": 0.1})  # runs add up: 210
    assert decide(r, st) == [] and st.pending and st.stage == "paper"  # waits for the operator
    assert approve(r, st, "ops").to == "live" and st.stage == "live" and not st.pending


def test_auto_approval_moves_at_once_and_demotion_goes_one_stage_back():
    r = rules(live=rules().live.model_copy(update={"approval": "auto"}))
    st = StageState(stage="paper")
    st.record("paper", "p", 300, {"sharpe": 0.6, "max_drawdown": 0.1})
    assert [m.to for m in decide(r, st)] == ["live"]
    st.record("live", "l", 10, {"sharpe": -1.0, "max_drawdown": 0.35})
    [move] = decide(r, st)
    assert (move.frm, move.to) == ("live", "paper") and "max_drawdown 0.35 > 0.3" in move.reason
    # back in paper its paper record (drawdown 0.1) decides: promoted again (auto)
    assert [m.to for m in decide(r, st)] == ["live"]
    st.record("paper", "p", 400, {"sharpe": 0.6, "max_drawdown": 0.5})
    st.stage = "paper"
    assert [(m.frm, m.to) for m in decide(r, st)] == [("paper", "backtest")]


def test_pending_is_withdrawn_when_the_paper_record_falls_short():
    r, st = rules(), StageState(stage="paper")
    st.record("paper", "p", 300, {"sharpe": 0.6, "max_drawdown": 0.1})
    decide(r, st)
    assert st.pending
    st.record("paper", "p", 310, {"sharpe": 0.4, "max_drawdown": 0.1})
    decide(r, st)
    assert not st.pending
    with pytest.raises(NotAwaitingApproval, match=r"paper sharpe 0\.4 < gate 0\.5"):
        approve(r, st, "ops")


@given(hs.lists(hs.tuples(hs.sampled_from(["backtest", "paper", "live"]),
                          hs.integers(0, 1000), hs.floats(-2, 3), hs.floats(0, 1),
                          hs.booleans()), max_size=30))
def test_moves_are_one_stage_at_a_time_and_live_only_by_approval(steps):
    """Invariant: every move goes to a neighbouring stage, a move up to live with operator
    approval never comes from ``decide``, and the state's stage is the last move's."""
    order = {"backtest": 0, "paper": 1, "live": 2}
    r, st = rules(), StageState()
    for mode, bars, sharpe, dd, ok in steps:
        st.record(mode, "run", bars, {"sharpe": sharpe, "max_drawdown": dd})
        before = st.stage
        moves = decide(r, st)
        assert len(moves) <= 1
        for m in moves:
            assert abs(order[m.to] - order[m.frm]) == 1 and m.frm == before
            assert m.to != "live"
            assert st.stage == m.to
        if ok and st.pending:
            approve(r, st, "ops")
            assert st.stage == "live"
        # stage and pending round-trip; the records are stored with the strategy's state
        back = StageState.from_dict(st.to_dict(), Records.from_dict(st.records.to_dict()))
        assert (back.stage, back.pending) == (st.stage, st.pending)
        assert {m: (r.runs, r.metrics) for m, r in back.records.items()} == {
            m: (r.runs, r.metrics) for m, r in st.records.items()}


def upd(sid: str, seq: int, mode: str, n_bars: int, sharpe: float, dd: float = 0.1):
    return MetricsUpdate(world="w", strategy_id=sid, run_id=f"{mode}-run", seq=seq, mode=mode,
                         as_of=seq, n_bars=n_bars, metrics={"sharpe": sharpe, "max_drawdown": dd},
                         returns=[(seq * 10 + i, 0.001 * (i - 1)) for i in range(3)])


def test_engine_emits_stage_changes_and_keeps_them_in_its_state():
    eng = WorldEngine(parse_policy(ISSUE_YAML))
    changes = eng.ingest(upd("a", 1, "backtest", 600, 1.0))
    stage_moves = [c for c in changes if c.stage is not None]
    assert [(c.strategy_id, c.stage) for c in stage_moves] == [("a", "paper")]
    assert stage_moves[0].active == eng.strategies["a"].active  # carries the activation as is
    assert eng.view("a").stage == "paper" and eng.view("a").stage_hints == [
        "paper record 0 bars < 200", "paper record has no sharpe", "paper record has no "
        "max_drawdown"]
    eng.ingest(upd("a", 2, "paper", 250, 0.6))
    assert eng.view("a").awaiting_approval
    again = WorldEngine.from_state(eng.to_state())
    assert again.view("a").stage == "paper" and again.view("a").awaiting_approval
    [ch] = approve_in(again, "a", "ops")
    assert ch["stage"] == "live" and again.view("a").stage == "live"
    with pytest.raises(KeyError):
        approve_in(again, "nobody", "ops")


def test_turning_promotion_on_announces_every_stage():
    eng = WorldEngine(parse_policy("top_k: 3"))
    eng.ingest(upd("a", 1, "backtest", 10, 1.0))
    eng.ingest(upd("b", 1, "backtest", 900, 1.0))
    assert eng.view("a").stage is None
    changes = eng.set_policy(parse_policy(ISSUE_YAML), 2)
    # a is announced in backtest (10 bars), b's backtest record, kept while stages were
    # off, promotes it at once
    assert sorted((c.strategy_id, c.stage) for c in changes if c.stage) == [
        ("a", "backtest"), ("b", "paper")]
    with pytest.raises(NotAwaitingApproval, match="no promotion section"):
        eng.set_policy(parse_policy("top_k: 3"), 3)
        approve_in(eng, "a", "ops")
