"""The overfitting statistics against references written here from the papers' formulas:
a direct loop over every CSCV split (Bailey et al. 2015) and the closed forms of the
expected maximum Sharpe and the deflated Sharpe ratio (Bailey & López de Prado 2014)."""

from __future__ import annotations

import itertools
import math
import statistics

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import kurtosis, norm, skew

from qmtl.sweep import stats


def ref_sharpe(x: list[float]) -> float:
    return statistics.fmean(x) / statistics.stdev(x)


def ref_pbo(m: np.ndarray, s: int) -> tuple[float, list[float]]:
    """CSCV written out: every choice of S/2 blocks as in-sample, one at a time."""
    t, n = m.shape
    size = t // s
    blocks = [m[i * size:(i + 1) * size] for i in range(s)]
    logits = []
    for train_ids in itertools.combinations(range(s), s // 2):
        test_ids = [i for i in range(s) if i not in train_ids]
        train = np.vstack([blocks[i] for i in train_ids])
        test = np.vstack([blocks[i] for i in test_ids])
        is_perf = [ref_sharpe(list(train[:, j])) for j in range(n)]
        oos_perf = [ref_sharpe(list(test[:, j])) for j in range(n)]
        star = max(range(n), key=lambda j: is_perf[j])
        below = sum(1 for j in range(n) if oos_perf[j] < oos_perf[star])
        ties = sum(1 for j in range(n) if oos_perf[j] == oos_perf[star]) - 1
        w = (below + 0.5 * ties + 1) / (n + 1)
        logits.append(math.log(w / (1 - w)))
    return sum(1 for x in logits if x <= 0) / len(logits), logits


@pytest.mark.parametrize(("t", "n", "s", "seed"), [(120, 5, 4, 0), (203, 7, 6, 1),
                                                   (400, 12, 8, 2)])
def test_pbo_equals_the_direct_loop_over_all_splits(t: int, n: int, s: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    m = rng.normal(0.0002, 0.01, size=(t, n)) + rng.normal(0, 0.0005, n)
    want, logits = ref_pbo(m, s)
    got = stats.pbo(m, s)
    assert got.n_splits == math.comb(s, s // 2)
    assert got.pbo == want
    np.testing.assert_allclose(got.logits, logits, rtol=0, atol=1e-9)


def test_pbo_tells_skill_from_noise() -> None:
    rng = np.random.default_rng(5)
    noise = rng.normal(0, 0.01, size=(2000, 30))
    assert stats.pbo(noise + np.linspace(0, 0.003, 30), 10).pbo == 0.0
    # the in-sample best of pure noise is at or below the median out of sample often
    assert 0.2 < stats.pbo(noise, 10).pbo < 0.8


def test_pbo_rejects_bad_splits() -> None:
    with pytest.raises(ValueError, match="even"):
        stats.pbo(np.zeros((100, 3)), 5)
    with pytest.raises(ValueError, match="2 bars per block"):
        stats.pbo(np.zeros((10, 3)), 8)
    with pytest.raises(ValueError, match="2 variants"):
        stats.pbo(np.zeros((100, 1)), 4)


@pytest.mark.parametrize(("n", "v"), [(2, 0.5), (10, 0.01), (100, 0.0004), (1000, 1.0)])
def test_expected_max_sharpe_closed_form(n: int, v: float) -> None:
    g = 0.5772156649015329  # Euler-Mascheroni
    want = math.sqrt(v) * ((1 - g) * norm.ppf(1 - 1 / n) + g * norm.ppf(1 - 1 / (n * math.e)))
    assert stats.expected_max_sharpe(n, v) == pytest.approx(want, rel=1e-12)


def test_expected_max_sharpe_is_close_to_the_simulated_maximum() -> None:
    """The approximation against the mean maximum of N standard normals (scaled by sqrt(V))."""
    rng = np.random.default_rng(3)
    n, v = 200, 0.04
    simulated = (rng.standard_normal((20_000, n)) * math.sqrt(v)).max(axis=1).mean()
    assert stats.expected_max_sharpe(n, v) == pytest.approx(simulated, rel=0.02)


def test_deflated_sharpe_matches_the_formula() -> None:
    rng = np.random.default_rng(11)
    trials = rng.standard_t(5, size=(750, 40)) * 0.01 + 0.0004
    srs = [ref_sharpe(list(trials[:, j])) for j in range(40)]
    best = trials[:, int(np.argmax(srs))]
    sr = ref_sharpe(list(best))
    sr0 = math.sqrt(statistics.variance(srs)) * (
        (1 - 0.5772156649015329) * norm.ppf(1 - 1 / 40)
        + 0.5772156649015329 * norm.ppf(1 - 1 / (40 * math.e)))
    g3, g4 = skew(best), kurtosis(best, fisher=False)
    want = norm.cdf((sr - sr0) * math.sqrt(len(best) - 1)
                    / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr ** 2))
    got = stats.deflated_sharpe(best, np.array(srs))
    assert got.expected_max == pytest.approx(sr0, rel=1e-12)
    assert got.sharpe == pytest.approx(sr, rel=1e-12)
    assert got.dsr == pytest.approx(want, rel=1e-10)
    assert got.n_trials == 40 and got.n_obs == 750


def test_one_trial_is_not_deflated() -> None:
    r = np.random.default_rng(1).normal(0.001, 0.01, 500)
    d = stats.deflated_sharpe(r, np.array([float(stats.sharpe(r))]))
    assert d.expected_max == 0.0
    assert d.dsr == pytest.approx(stats.probabilistic_sharpe(r, 0.0))


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 6).map(lambda k: 2 * k), st.integers(2, 8), st.integers(0, 10_000))
def test_pbo_is_a_probability_and_logits_are_symmetric_in_range(s: int, n: int,
                                                                seed: int) -> None:
    m = np.random.default_rng(seed).normal(0, 0.01, size=(s * 5, n))
    got = stats.pbo(m, s)
    assert 0.0 <= got.pbo <= 1.0
    bound = math.log(n / 1)  # w lies in [1/(N+1), N/(N+1)]
    assert np.all(np.abs(got.logits) <= bound + 1e-12)
