"""How much of a sweep's best result is luck: the deflated Sharpe ratio and the probability
of backtest overfitting. Pure numpy/scipy on arrays of per-period returns.

**Deflated Sharpe ratio** (Bailey & López de Prado, 2014, "The Deflated Sharpe Ratio:
Correcting for Selection Bias, Backtest Overfitting and Non-Normality", JPM 40(5)). With
``N`` trials whose per-period Sharpe ratios have variance ``V``, the Sharpe the best of them
reaches by luck alone is about

    SR0 = sqrt(V) * ((1 - g) * Z(1 - 1/N) + g * Z(1 - 1/(N e)))      g = 0.5772... (Euler)

and the DSR is the probabilistic Sharpe ratio of the best variant against it, from its
``T`` returns, skewness ``s`` and (non-excess) kurtosis ``k``:

    DSR = Phi((SR - SR0) * sqrt(T - 1) / sqrt(1 - s * SR + (k - 1) / 4 * SR^2))

All Sharpe ratios here are per period (not annualized). A DSR near 1 says the best Sharpe
is unlikely to be the luck of ``N`` draws; below 0.95 it is not significant at 5%.

**Probability of backtest overfitting** (Bailey, Borwein, López de Prado & Zhu, 2015, "The
Probability of Backtest Overfitting", J. Computational Finance 20(4)), by combinatorially
symmetric cross-validation (CSCV): cut the ``T x N`` matrix of returns into ``S`` blocks of
rows; for each of the ``C(S, S/2)`` ways to pick half of them as in-sample, take the variant
with the best in-sample Sharpe and its relative rank ``w`` among the ``N`` out of sample
(``rank / (N + 1)``); PBO is the share of splits where ``logit(w) <= 0``, i.e. the
in-sample best is at or below the median out of sample.

>>> rng = np.random.default_rng(0)
>>> noise = rng.normal(0, 0.01, size=(1000, 20))
>>> 0.3 < pbo(noise, splits=8).pbo < 0.8          # pure noise: about even odds
True
>>> skill = noise + np.linspace(0, 0.002, 20)     # later variants really are better
>>> pbo(skill, splits=8).pbo
0.0
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
from scipy import stats as sps

EULER_GAMMA = 0.5772156649015329


def sharpe(returns: np.ndarray) -> np.ndarray:
    """Per-period Sharpe ratio (mean / standard deviation, ddof=1) of each column (or of a
    1-d series); NaN where the deviation is 0.

    >>> float(sharpe(np.array([0.01, 0.03])))
    1.4142135623730951
    """
    r = np.asarray(returns, dtype=np.float64)
    sd = r.std(axis=0, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(sd > 0, r.mean(axis=0) / np.where(sd > 0, sd, 1.0), np.nan)


def expected_max_sharpe(n_trials: int, variance: float) -> float:
    """``SR0``: the expected maximum of ``n_trials`` per-period Sharpe ratios with variance
    ``variance`` when none has skill (the false strategy theorem, see the module docstring).

    >>> round(expected_max_sharpe(100, 0.01), 4)
    0.2531
    >>> expected_max_sharpe(1, 0.01)
    0.0
    """
    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    if n_trials == 1 or variance <= 0:
        return 0.0
    z = sps.norm.ppf
    return math.sqrt(variance) * float(
        (1 - EULER_GAMMA) * z(1 - 1 / n_trials)
        + EULER_GAMMA * z(1 - 1 / (n_trials * math.e))
    )


def probabilistic_sharpe(returns: np.ndarray, benchmark: float) -> float:
    """PSR: the probability that the true per-period Sharpe of ``returns`` exceeds
    ``benchmark``, given their length, skewness and kurtosis (Bailey & López de Prado, 2012).

    >>> r = np.random.default_rng(1).normal(0.001, 0.01, 2000)
    >>> probabilistic_sharpe(r, 0.0) > 0.95, probabilistic_sharpe(r, 1.0) < 1e-6
    (True, True)
    """
    r = np.asarray(returns, dtype=np.float64)
    t = len(r)
    if t < 3:
        return math.nan
    sr = float(sharpe(r))
    if not math.isfinite(sr):
        return math.nan
    skew = float(sps.skew(r))
    kurt = float(sps.kurtosis(r, fisher=False))
    denominator = 1 - skew * sr + (kurt - 1) / 4 * sr * sr
    if denominator <= 0:
        return math.nan
    return float(sps.norm.cdf((sr - benchmark) * math.sqrt(t - 1) / math.sqrt(denominator)))


@dataclass
class Deflated:
    """The deflated Sharpe ratio of the best variant and what went into it (per period).

    >>> Deflated(0.9, 0.1, 0.05, 10, 0.01, 250).dsr
    0.9
    """

    dsr: float
    sharpe: float
    expected_max: float
    n_trials: int
    variance: float
    n_obs: int


def deflated_sharpe(best: np.ndarray, trial_sharpes: np.ndarray) -> Deflated:
    """DSR of the returns ``best`` (the selected variant's) against ``len(trial_sharpes)``
    trials with those per-period Sharpe ratios (their variance, ddof=1, is ``V``).

    >>> rng = np.random.default_rng(2)
    >>> trials = rng.normal(0, 0.01, size=(500, 50))
    >>> srs = sharpe(trials)
    >>> d = deflated_sharpe(trials[:, np.argmax(srs)], srs)
    >>> d.n_trials, d.dsr < 0.95                  # the best of 50 noise series: not significant
    (50, True)
    """
    srs = np.asarray(trial_sharpes, dtype=np.float64)
    srs = srs[np.isfinite(srs)]
    n = len(srs)
    if n == 0:
        raise ValueError("no trial has a finite Sharpe ratio")
    variance = float(srs.var(ddof=1)) if n > 1 else 0.0
    sr0 = expected_max_sharpe(n, variance)
    r = np.asarray(best, dtype=np.float64)
    return Deflated(probabilistic_sharpe(r, sr0), float(sharpe(r)), sr0, n, variance, len(r))


@dataclass
class Pbo:
    """The CSCV result: PBO, one logit per split, and how many splits there were.

    >>> Pbo(0.25, np.array([-1.0, 1.0, 2.0, 3.0])).n_splits
    4
    """

    pbo: float
    logits: np.ndarray

    @property
    def n_splits(self) -> int:
        """How many in-sample/out-of-sample splits were evaluated.

        >>> Pbo(0.0, np.zeros(70)).n_splits
        70
        """
        return len(self.logits)


def pbo(returns: np.ndarray, splits: int = 16) -> Pbo:
    """Probability of backtest overfitting of a ``T x N`` matrix of per-period returns (one
    column per variant) by CSCV with ``splits`` blocks (even; the last ``T mod splits`` rows
    are dropped). Performance is the per-period Sharpe; ties in rank count half.

    >>> pbo(np.zeros((10, 3)), splits=3)
    Traceback (most recent call last):
    ...
    ValueError: --pbo-splits must be an even number >= 2, got 3
    """
    m = np.asarray(returns, dtype=np.float64)
    if splits < 2 or splits % 2:
        raise ValueError(f"--pbo-splits must be an even number >= 2, got {splits}")
    if m.ndim != 2 or m.shape[1] < 2:
        raise ValueError("PBO needs at least 2 variants")
    size = m.shape[0] // splits
    if size < 2:
        raise ValueError(f"PBO needs at least 2 bars per block: {m.shape[0]} bars for "
                         f"{splits} blocks")
    blocks = m[: size * splits].reshape(splits, size, m.shape[1])
    sums, squares = blocks.sum(axis=1), (blocks * blocks).sum(axis=1)  # splits x N
    combos = np.array(list(itertools.combinations(range(splits), splits // 2)))
    chosen = np.zeros((len(combos), splits))
    np.put_along_axis(chosen, combos, 1.0, axis=1)
    n = size * splits // 2

    def perf(pick: np.ndarray) -> np.ndarray:
        s, q = pick @ sums, pick @ squares
        var = (q - s * s / n) / (n - 1)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(var > 0, (s / n) / np.sqrt(np.maximum(var, 0)), -np.inf)

    train, test = perf(chosen), perf(1.0 - chosen)
    best = np.argmax(train, axis=1)
    picked = test[np.arange(len(combos)), best][:, None]
    rank = (test < picked).sum(axis=1) + 0.5 * ((test == picked).sum(axis=1) - 1) + 1
    w = rank / (m.shape[1] + 1)
    logits = np.log(w / (1 - w))
    return Pbo(float(np.mean(logits <= 0)), logits)
