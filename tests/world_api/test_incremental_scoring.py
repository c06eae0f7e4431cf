"""Incremental score statistics, ranks and correlations equal a full recompute after any
sequence of updates (hypothesis), and the exact statistics agree with numpy's."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from qmtl.core.contracts import MetricsUpdate
from world_api.domain.evaluator import WorldEngine
from world_api.domain.incremental import ScoreBook, exact_mean_sd
from world_api.domain.policy import parse_policy
from world_api.domain.scoring import score_and_rank
from world_api.domain.strategy_state import aligned_corr

metric = st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(math.nan),
                   st.sampled_from([0.0, 1.0, -1.0]))
ops = st.lists(st.tuples(st.integers(0, 40), st.tuples(metric, metric), st.booleans()),
               min_size=1, max_size=120)


def full_recompute(book: ScoreBook) -> tuple[np.ndarray, np.ndarray, list[int]]:
    n = len(book.elig)
    score, rank = np.full(n, np.nan), np.zeros(n, dtype=np.int64)
    order = score_and_rank(book.cols.T.copy(), book.weights, book.elig.copy(),
                           book.sid_rank, score, rank)
    return score, rank, order.tolist()


@settings(max_examples=150, deadline=None)
@given(ops)
def test_scorebook_equals_a_full_recompute_after_any_updates(seq: list) -> None:
    book = ScoreBook(np.array([0.7, 0.3]))
    for row, values, eligible in seq:
        while len(book.elig) <= row:
            book.add_row()
        book.set_row(row, np.array(values), eligible)
        score, rank, order = full_recompute(book)
        # bit for bit: exact sums make the statistics independent of the arrival order
        assert np.array_equal(book.score(), score, equal_nan=True)
        assert book.ranks().tolist() == rank.tolist()
        assert list(book.order()) == order


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=1, max_size=50))
def test_exact_statistics_agree_with_numpy(values: list[float]) -> None:
    x = np.array(values)
    mean, sd = exact_mean_sd(x)
    scale = max(1.0, float(np.abs(x).max()))
    assert math.isclose(mean, float(x.mean()), rel_tol=1e-12, abs_tol=1e-12 * scale)
    assert math.isclose(sd, float(x.std()), rel_tol=1e-9, abs_tol=1e-9 * scale)


POLICY = """
min_bars: 3
gates: {sharpe: ">= 0"}
score: {sharpe: 0.7, linearity: 0.3}
top_k: 3
max_correlation: 0.9
hysteresis: {margin: 0.1, min_dwell_bars: 2}
allocation: {method: risk_parity, max_weight: 0.6}
"""

update = st.tuples(st.integers(0, 9), st.floats(-2, 3, allow_nan=False),
                   st.one_of(st.floats(0, 1), st.just(math.nan)), st.integers(0, 1_000))


@settings(max_examples=60, deadline=None)
@given(st.lists(update, min_size=1, max_size=60))
def test_engine_ranks_scores_correlations_equal_a_full_recompute(seq: list) -> None:
    eng = WorldEngine(parse_policy(POLICY))
    seqs: dict[str, int] = {}
    for i, sharpe, lin, seed in seq:
        sid = f"s{i}"
        seqs[sid] = seqs.get(sid, 0) + 1
        k = seqs[sid]
        rng = np.random.default_rng(seed)
        metrics = {"sharpe": sharpe} | ({} if math.isnan(lin) else {"linearity": lin})
        eng.ingest(MetricsUpdate(
            world="w", strategy_id=sid, run_id="r", seq=k, mode="paper", as_of=k,
            n_bars=2 * k, metrics=metrics,
            returns=[(25 * k + j, float(r)) for j, r in enumerate(rng.normal(0, 0.01, 25))]))
        book = eng._book
        # ties go by id: the rank of each row's id among all ids, kept by bisection
        ids = np.array(eng._ids, dtype=object)
        assert book.sid_rank.tolist() == np.argsort(np.argsort(ids)).tolist()
        score, rank, order = full_recompute(book)
        assert np.array_equal(book.score(), score, equal_nan=True)
        assert book.ranks().tolist() == rank.tolist()
        assert list(book.order()) == order
        # cached correlations equal a recompute from the rings
        ids = sorted(eng.strategies)
        for a in ids:
            for b in ids:
                if a < b:
                    got, want = eng.correlation(a, b), aligned_corr(eng.strategies[a],
                                                                   eng.strategies[b])
                    assert (math.isnan(got) and math.isnan(want)) or got == want
    # an engine rebuilt from the state reaches the same selection, ranks and scores
    again = WorldEngine.from_state(eng.to_state())
    assert again.weights() == eng.weights()
    assert [v.model_dump() for v in again.views()] == [v.model_dump() for v in eng.views()]


def test_a_world_of_more_than_16_strategies_reloads_from_its_state():
    """A rebuild gives the book every id's rank before its rows (ScoreBook(sid_rank=...)):
    growing its buffers from 16 rows must keep all of them (it raised a broadcast error, and
    the world's views answered 500, past 16 strategies)."""
    ranks = np.arange(40)[::-1].copy()
    book = ScoreBook(np.array([1.0]), ranks)
    for _ in range(40):
        book.add_row()
    assert book.rows == 40 and book.sid_rank.tolist() == ranks.tolist()
