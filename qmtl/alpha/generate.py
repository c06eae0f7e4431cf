"""Random alpha texts from a seeded generator, for benchmarks and alpha-mining experiments.

The trees are built from the language's fields and operators with a small set of windows,
as alpha searches do, so many alphas share sub-expressions (``rank(close)``,
``ts_mean(volume, 20)``): the workload where computing each distinct node once pays.

>>> texts = random_alphas(3, seed=1)
>>> texts == random_alphas(3, seed=1), len(set(texts))
(True, 3)
>>> from qmtl.alpha.syntax import parse
>>> all(parse(t) for t in random_alphas(50, seed=2))
True
"""

from __future__ import annotations

import random

from qmtl.alpha.syntax import Binary, Call, Name, Node, Num, unparse

__all__ = ["WINDOWS", "random_alpha", "random_alphas"]

WINDOWS = (5, 10, 20)
"""The windows generated alphas use."""

_FIELDS = ("open", "high", "low", "close", "volume", "returns", "vwap")
_TS = ("ts_mean", "ts_std", "ts_delta", "delay", "ts_min", "ts_max", "ts_rank", "ts_zscore",
       "decay_linear", "ts_sum")
_PAIR = ("ts_corr", "ts_cov")
_CS = ("rank", "zscore")
_UNARY = ("abs", "sign")
_BINARY = ("+", "-", "*", "/")


def random_alpha(rng: random.Random, depth: int = 3) -> Node:
    """One random syntax tree of at most ``depth`` levels of operators.

    >>> unparse(random_alpha(random.Random(3), 0))
    'high'
    >>> unparse(random_alpha(random.Random(6), 2))
    'ts_sum(close, 5) / abs(low)'
    """
    if depth <= 0 or (depth < 3 and rng.random() < 0.25):
        return Name(rng.choice(_FIELDS))
    kind = rng.choices(("ts", "pair", "cs", "unary", "binary"), weights=(5, 1, 3, 1, 3))[0]
    window = Num(float(rng.choice(WINDOWS)))
    if kind == "ts":
        return Call(rng.choice(_TS), (random_alpha(rng, depth - 1), window))
    if kind == "pair":
        a, b = rng.sample(_FIELDS, 2)
        return Call(rng.choice(_PAIR), (Name(a), Name(b), window))
    if kind == "cs":
        return Call(rng.choice(_CS), (random_alpha(rng, depth - 1),))
    if kind == "unary":
        return Call(rng.choice(_UNARY), (random_alpha(rng, depth - 1),))
    left, right = random_alpha(rng, depth - 1), random_alpha(rng, depth - 1)
    return Binary(rng.choice(_BINARY), left, right)


def random_alphas(n: int, seed: int = 0, depth: int = 3) -> list[str]:
    """``n`` distinct random alpha texts, the same for the same ``seed``; each reads the
    cross-section at least once (``rank`` or ``zscore`` at its top when it does not).

    >>> random_alphas(2, seed=7)[0] != random_alphas(2, seed=8)[0]
    True
    """
    rng = random.Random(seed)
    seen: set[str] = set()
    out: list[str] = []
    while len(out) < n:
        tree = random_alpha(rng, depth)
        text = unparse(tree)
        if not any(f"{c}(" in text for c in _CS):
            text = unparse(Call(rng.choice(_CS), (tree,)))
        if text not in seen:
            seen.add(text)
            out.append(text)
    return out
