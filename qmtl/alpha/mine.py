"""``qmtl mine``: an alpha search by genetic programming on the language's own trees
(:mod:`qmtl.alpha.evolve`). Each generation is backtested in one flow
(:func:`qmtl.alpha.api.backtest_alphas`): equal alphas (one content id) are evaluated once
across the whole search, and the nodes they share once per bar. Fitness is the annualized
Sharpe on a training window; the test window after it is held out and only reported. The
deflated Sharpe of the best counts **every** distinct candidate tried as a trial; a
candidate whose training returns correlate with a strategy already active in a world
(``|corr| > max_corr``) is not chosen.

>>> from connectors.data.synthetic import generate_bars
>>> data = {s: generate_bars(150, seed=i) for i, s in enumerate("ABCD")}
>>> res = mine(data, list("ABCD"), population=6, generations=2, seed=3)
>>> again = mine(data, list("ABCD"), population=6, generations=2, seed=3)
>>> [c.text for c in again.candidates] == [c.text for c in res.candidates]
True
>>> res.tried, len(res.generations)
(12, 2)
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from qmtl.alpha.api import alpha, backtest_alphas, dedup
from qmtl.alpha.evolve import breed, compiles
from qmtl.alpha.generate import random_alpha
from qmtl.alpha.spec import GraphStrategy
from qmtl.alpha.syntax import Node, unparse
from qmtl.core.intervals import periods_per_year
from qmtl.sources import DataSource
from qmtl.sweep import stats as overfit

__all__ = ["Candidate", "Generation", "MineResult", "correlation", "mine"]


@dataclass
class Candidate:
    """One distinct alpha tried: its text, the generation that first made it, its annual
    Sharpe on the training and test windows, the largest |correlation| with an active
    strategy (NaN: none to compare) and its training returns (not compared for equality)."""

    text: str
    name: str
    generation: int
    train_sharpe: float
    test_sharpe: float
    max_corr: float
    train: np.ndarray = field(repr=False, compare=False)
    train_ts: np.ndarray = field(repr=False, compare=False)


@dataclass
class Generation:
    """A generation's size, how many distinct alphas it held and how many were new (the
    rest were evaluated before), and the nodes its flow evaluated against the sum of each
    new alpha's own (the node dedup)."""

    candidates: int
    distinct: int
    new: int
    nodes: int
    nodes_alone: int
    best_train_sharpe: float

    @property
    def dedup(self) -> float:
        """Evaluations saved per generation: candidates x nodes alone / nodes evaluated.

        >>> Generation(10, 5, 5, 20, 60, 1.0).dedup
        6.0
        """
        return (self.candidates / max(self.new, 1)) * (self.nodes_alone / max(self.nodes, 1)) \
            if self.new else math.inf


@dataclass
class MineResult:
    """Every distinct candidate (best training Sharpe first), the generations, the number
    of candidates made (``tried``, duplicates included) and the deflated Sharpe of the best
    over all distinct candidates."""

    candidates: list[Candidate]
    generations: list[Generation]
    tried: int
    deflated: float
    train_end: int

    def best(self, k: int, max_corr: float = 0.7) -> list[Candidate]:
        """The ``k`` best candidates that correlate with no active strategy and with no
        better pick above ``max_corr`` (training returns).

        >>> MineResult([], [], 0, math.nan, 0).best(3)
        []
        """
        out: list[Candidate] = []
        for c in self.candidates:
            if not math.isfinite(c.train_sharpe) or (math.isfinite(c.max_corr)
                                                     and c.max_corr > max_corr):
                continue
            if any(abs(correlation(c.train_ts, c.train, o.train_ts, o.train)) > max_corr
                   for o in out):
                continue
            out.append(c)
            if len(out) == k:
                break
        return out


def correlation(ts_a: np.ndarray, a: np.ndarray, ts_b: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of two return series on their common bar times (0.0 with fewer
    than 3 or a constant side).

    >>> correlation(np.arange(4), np.array([1.0, 2, 1, 3]), np.arange(1, 5),
    ...             np.array([2.0, 1, 3, 0]))
    1.0
    """
    _, ia, ib = np.intersect1d(ts_a, ts_b, return_indices=True)
    x, y = a[ia], b[ib]
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return 0.0
    return float(np.corrcoef(x, y)[0, 1])


def _annual(r: np.ndarray, ppy: float) -> float:
    return float(overfit.sharpe(r)) * math.sqrt(ppy) if len(r) > 2 else math.nan


def _seed_population(rng: random.Random, n: int, max_depth: int) -> list[Node]:
    out: list[Node] = []
    while len(out) < n:
        tree = random_alpha(rng, max_depth)
        if compiles(tree):
            out.append(tree)
    return out


def mine(
    data: DataSource,
    symbols: Sequence[str],
    interval: str = "1d",
    *,
    population: int = 50,
    generations: int = 5,
    seed: int = 0,
    max_depth: int = 3,
    train: float = 0.7,
    cost_bps: float = 0.0,
    active: Mapping[str, tuple[np.ndarray, np.ndarray]] | None = None,
) -> MineResult:
    """Search ``generations`` of ``population`` alphas over ``symbols`` (see the module
    docstring); ``train`` is the share of bars the fitness reads, ``active`` the return
    series ``(ts, returns)`` of a world's active strategies. The same arguments give the
    same result.
    """
    if population < 2 or generations < 1:
        raise ValueError(f"population must be >= 2 and generations >= 1, got {population} "
                         f"and {generations}")
    if not 0.1 <= train < 1.0:
        raise ValueError(f"train must be in [0.1, 1), got {train}")
    rng = random.Random(seed)
    ppy = periods_per_year(interval)
    seen: dict[str, Candidate] = {}
    gens: list[Generation] = []
    pop = _seed_population(rng, population, max_depth)
    cut: int | None = None
    tried = 0
    for g in range(generations):
        tried += len(pop)
        strategies: dict[str, GraphStrategy] = {}
        for tree in pop:
            s = alpha(unparse(tree), symbols, interval, cost_bps=cost_bps)
            strategies.setdefault(s.name, s)
        new = [s for name, s in strategies.items() if name not in seen]
        nodes, alone = dedup(new) if new else (0, 0)
        for s, res in zip(new, backtest_alphas(new, data) if new else [], strict=True):
            if cut is None:
                cut = int(res.ts[int(len(res.ts) * train) - 1])
            ts, r = np.asarray(res.ts), np.asarray(res.returns)
            tr = ts <= cut
            corr = max((abs(correlation(ts[tr], r[tr], *active[k])) for k in active),
                       default=math.nan) if active else math.nan
            seen[s.name] = Candidate(s.alpha or "", s.name, g, _annual(r[tr], ppy),
                                     _annual(r[~tr], ppy), corr, r[tr], ts[tr])
        scores = {name: seen[name].train_sharpe for name in strategies}
        ranked_names = sorted(strategies, key=lambda n: (-np.nan_to_num(scores[n], nan=-1e9),
                                                          n))
        best = scores[ranked_names[0]]
        gens.append(Generation(len(pop), len(strategies), len(new), nodes, alone, best))
        if g + 1 < generations:
            trees = {name: tree for tree in pop
                     for name in [alpha(unparse(tree), symbols, interval).name]}
            pop = breed(rng, [trees[n] for n in ranked_names], population, max_depth)
    ranked = sorted(seen.values(), key=lambda c: (-np.nan_to_num(c.train_sharpe, nan=-1e9),
                                                  c.name))
    srs = np.array([float(overfit.sharpe(c.train)) if len(c.train) > 2 else math.nan
                    for c in ranked])
    deflated = math.nan
    if len(ranked) > 1 and np.isfinite(srs).sum() > 1 and len(ranked[0].train) > 2:
        deflated = float(overfit.deflated_sharpe(ranked[0].train, srs).dsr)
    return MineResult(ranked, gens, tried, deflated, cut or 0)
