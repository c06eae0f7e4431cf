"""A world policy without traps: dwell counted on the world's clock (a backtest that never
sends more bars cannot hold its place for ever), an override that forces a strategy out
frees its slot and blocks nobody, every eligible strategy that is not active says why, and
a pro forma over histories that barely overlap says so."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from dataflows.metrics import MetricSet
from qmtl.core.contracts import MetricsUpdate
from tests.world_api.service.conftest import client  # noqa: F401
from world_api.domain.evaluator import WorldEngine
from world_api.domain.overrides import Override
from world_api.domain.policy import parse_policy
from world_api.domain.world_returns import MIN_PRO_FORMA_OVERLAP, overlap_share

DAY = 86_400 * 10**9


def upd(
    sid: str, seq: int, sharpe: float, returns: list[tuple[int, float]], n_bars: int | None = None
) -> MetricsUpdate:
    return MetricsUpdate(
        world="w",
        strategy_id=sid,
        run_id="r",
        seq=seq,
        mode="backtest",
        as_of=returns[-1][0] if returns else seq,
        n_bars=n_bars if n_bars is not None else 100 * seq,
        metrics={"sharpe": sharpe},
        returns=returns,
    )


def days(
    start: int, n: int, seed: int = 0, base: np.ndarray | None = None
) -> list[tuple[int, float]]:
    r = np.random.default_rng(seed).normal(0, 0.01, n) if base is None else base
    return [((start + i) * DAY, float(x)) for i, x in enumerate(r)]


# -- dwell on the world's clock ------------------------------------------------------------


def test_a_backtest_that_sends_no_more_bars_does_not_dwell_for_ever():
    eng = WorldEngine(parse_policy("top_k: 1\nhysteresis: {min_dwell_bars: 100}"))
    eng.ingest(upd("weak", 1, -1.0, days(0, 50), n_bars=500))  # one update, then silence
    assert eng.weights() == {"weak": 1.0}
    eng.ingest(upd("strong", 1, 1.0, days(0, 50, seed=1), n_bars=50))
    view = eng.view("strong")
    assert (view.status, view.rank) == ("candidate", 1)
    # it says why: the incumbent dwells, for how many more world bars
    assert view.hints == [
        "top_k 1 is full: 'weak' stays active for min_dwell_bars 100 (50 more world bars)"
    ]
    # the strong one's own bars advance the world's clock: once 100 have arrived since the
    # incumbent was activated, the dwell is over (on today's code it never is)
    eng.ingest(upd("strong", 2, 1.0, days(50, 49, seed=2), n_bars=99))
    assert eng.weights() == {"weak": 1.0}
    eng.ingest(upd("strong", 3, 1.0, days(99, 1, seed=3), n_bars=100))
    assert eng.weights() == {"strong": 1.0}
    assert eng.world_bars == 150
    # and the one deactivated now dwells out on the same clock, with a hint
    eng.ingest(upd("weak", 2, 5.0, days(50, 10, seed=4), n_bars=510))
    assert eng.weights() == {"strong": 1.0}
    assert eng.view("weak").hints == [
        "deactivated 10 world bars ago: min_dwell_bars 100 keeps it out 90 more"
    ]
    again = WorldEngine.from_state(eng.to_state())
    assert again.world_bars == eng.world_bars
    assert [v.model_dump() for v in again.views()] == [v.model_dump() for v in eng.views()]


def test_a_state_stored_with_the_old_dwell_counter_does_not_dwell():
    eng = WorldEngine(parse_policy("top_k: 1\nhysteresis: {min_dwell_bars: 100}"))
    eng.ingest(upd("a", 1, 1.0, days(0, 30)))
    state = eng.to_state()
    d = state["strategies"]["a"]
    del d["changed_clock"]
    d["changed_at"] = 100  # an n_bars of its own, as stored before
    again = WorldEngine.from_state(state)
    assert again.strategies["a"].changed_clock is None and again.weights() == {"a": 1.0}


# -- overrides take no part in selection ---------------------------------------------------


def test_a_forced_out_strategy_frees_its_slot():
    eng = WorldEngine(parse_policy("top_k: 1"))
    eng.ingest(upd("a", 1, 2.0, days(0, 30)))
    eng.ingest(upd("b", 1, 1.0, days(0, 30, seed=1)))
    eng.overrides["a"] = Override(strategy_id="a", state="inactive", reason="halt", who="t", at=0)
    eng.reselect()
    assert eng.weights() == {"b": 1.0}  # today: nobody, a held the only slot
    assert eng.view("a").hints == ["held out by override: halt"]


def test_a_forced_out_strategy_blocks_no_correlated_one():
    eng = WorldEngine(parse_policy("top_k: 2\nmax_correlation: 0.8"))
    base = np.random.default_rng(0).normal(0, 0.01, 40)
    eng.ingest(upd("a", 1, 2.0, days(0, 40, base=base)))
    eng.ingest(upd("b", 1, 1.5, days(0, 40, base=base * 1.01)))  # a's twin
    eng.ingest(upd("c", 1, 1.0, days(0, 40, seed=5)))
    assert set(eng.weights()) == {"a", "c"}
    eng.overrides["a"] = Override(strategy_id="a", state="inactive", reason="halt", who="t", at=0)
    eng.reselect()
    assert set(eng.weights()) == {"b", "c"}
    assert eng.view("b").hints == []


def test_a_forced_in_strategy_takes_no_slot_and_blocks_nobody():
    eng = WorldEngine(parse_policy("top_k: 1\nmax_correlation: 0.8"))
    base = np.random.default_rng(0).normal(0, 0.01, 40)
    eng.ingest(upd("a", 1, 2.0, days(0, 40, base=base)))
    eng.ingest(upd("z", 1, -1.0, days(0, 40, base=base * 1.01)))
    eng.overrides["a"] = Override(strategy_id="a", state="active", reason="keep", who="t", at=0)
    eng.overrides["z"] = Override(strategy_id="z", state="active", reason="keep", who="t", at=0)
    eng.ingest(upd("b", 1, 1.5, days(0, 40, seed=9)))
    assert set(eng.weights()) == {"a", "b", "z"}


# -- every eligible strategy that is not active says why ------------------------------------


def test_an_incumbent_within_the_margin_is_named():
    eng = WorldEngine(parse_policy("top_k: 1\nhysteresis: {margin: 5}"))
    eng.ingest(upd("a", 1, 1.0, days(0, 30)))
    eng.ingest(upd("b", 1, 1.2, days(0, 30, seed=1)))
    eng.ingest(upd("c", 1, 0.0, days(0, 30, seed=2)))
    view = eng.view("b")
    assert (view.status, view.rank, eng.weights()) == ("candidate", 1, {"a": 1.0})
    by = 0.2 / np.std([1.0, 1.2, 0.0])  # z-scores of the sharpes: 0.38
    assert view.hints == [
        f"'a' stays active: b's score beats it by {by:.2f}, not more than hysteresis.margin 5"
    ]


def test_manual_mode_says_the_proposal_waits():
    eng = WorldEngine(parse_policy("top_k: 2\nallocation: {mode: manual}"))
    eng.ingest(upd("a", 1, 1.0, days(0, 30)))
    assert eng.view("a").status == "candidate"
    assert eng.view("a").hints == [
        "proposed active (allocation.mode manual): waits for an applied plan"
    ]


POLICY = """
min_bars: 150
gates: {sharpe: ">= 0"}
top_k: 2
max_correlation: 0.6
hysteresis: {margin: 0.3, min_dwell_bars: 40}
"""

step = st.tuples(
    st.integers(0, 6),
    st.floats(-1, 3, allow_nan=False),
    st.integers(0, 3),
    st.sampled_from([None, "active", "inactive", "clear"]),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(step, min_size=1, max_size=40), st.sampled_from(["auto", "manual"]))
def test_every_eligible_strategy_that_is_not_active_says_why(seq, mode):
    eng = WorldEngine(parse_policy(POLICY + f"allocation: {{mode: {mode}}}"))
    base = np.random.default_rng(0).normal(0, 0.01, 400)
    seqs: dict[str, int] = {}
    for i, sharpe, twin, override in seq:
        sid = f"s{i}"
        k = seqs[sid] = seqs.get(sid, 0) + 1
        noise = np.random.default_rng(i).normal(0, 0.01 * twin, 20)
        r = base[20 * (k - 1) : 20 * k] + noise
        eng.ingest(upd(sid, k, sharpe, days(20 * (k - 1), 20, base=r), n_bars=100 * k))
        if override == "clear":
            eng.overrides.pop(sid, None)
        elif override is not None:
            eng.overrides[sid] = Override(
                strategy_id=sid, state=override, reason="op", who="t", at=0
            )
        eng.reselect()
        for v in eng.views():
            if v.status == "candidate":
                assert v.hints, (v.strategy_id, v.rank, eng.weights())
        again = WorldEngine.from_state(
            {**eng.to_state(), "overrides": [o.model_dump() for o in eng.overrides.values()]}
        )
        assert again.weights() == eng.weights()


# -- pro forma overlap -----------------------------------------------------------------------


def dated(first: str, last: str, seed: int) -> list[tuple[int, float]]:
    """Business-day returns from ``first`` to ``last`` (the world keeps the last 2,000)."""
    ts = np.arange(np.datetime64(first), np.datetime64(last) + 1, dtype="datetime64[D]")
    ts = ts[np.is_busday(ts)][-2000:].astype("datetime64[ns]").astype(np.int64)
    r = np.random.default_rng(seed).normal(0.0005, 0.01, len(ts))
    return list(zip(ts.tolist(), r.tolist(), strict=True))


def test_a_pro_forma_over_histories_that_barely_overlap_warns():
    eng = WorldEngine(parse_policy("top_k: 2"))
    old, new = dated("2004-01-01", "2013-12-31", 1), dated("2015-01-01", "2021-12-31", 2)
    eng.ingest(upd("old", 1, 1.0, old))
    eng.ingest(upd("new", 1, 1.0, new))
    assert set(eng.weights()) == {"old", "new"}
    pf = eng.world_metrics()["pro_forma"]
    first = str(np.datetime64(old[0][0], "ns").astype("datetime64[D]"))
    assert pf["overlap"] == 0.0 and pf["shared_bars"] == 0  # not one bar in common
    assert pf["warnings"] == [
        "the active strategies' returns overlap on 0% of their span "
        f"({first} to 2021-12-31): the pro forma uses only the 0 bars they share"
    ]


def test_a_pro_forma_over_one_shared_history_does_not_warn():
    eng = WorldEngine(parse_policy("top_k: 2"))
    eng.ingest(upd("a", 1, 1.0, days(0, 100, seed=1)))
    eng.ingest(upd("b", 1, 1.0, days(10, 100, seed=2)))
    pf = eng.world_metrics()["pro_forma"]
    assert math.isclose(pf["overlap"], 89 / 109)  # [10, 99] of [0, 109] days
    assert pf["shared_bars"] == pf["n_bars"] == 90  # days 10 to 99, both ends in
    assert pf["warnings"] == []


def test_overlap_share_against_hand_computed_spans():
    spans = [(0, 10), (5, 20)]
    assert overlap_share(spans) == 5 / 20
    assert overlap_share([(0, 10)]) == 1.0
    assert overlap_share([(0, 10), (20, 30)]) == 0.0
    assert overlap_share([]) is None
    assert 0 < MIN_PRO_FORMA_OVERLAP < 1


def test_the_overlap_and_its_warning_are_served(client):  # noqa: F811
    client.put("/worlds/w1/policy", content="top_k: 2")
    for sid, pairs in (
        ("old", dated("2004-01-01", "2013-12-31", 1)),
        ("new", dated("2015-01-01", "2021-12-31", 2)),
    ):
        # the whole history with its own Sharpe: the world re-checks what it can
        honest = MetricSet(252).update([r for _, r in pairs]).finite()["sharpe"]
        body = upd(sid, 1, honest, pairs, n_bars=len(pairs))
        body = body.model_copy(update={"world": "w1"}).model_dump()
        assert client.post("/worlds/w1/metrics", json=body).status_code == 200
    pf = client.get("/worlds/w1/metrics").json()["pro_forma"]
    assert pf["overlap"] == 0.0 and "overlap on 0%" in pf["warnings"][0]
