"""Genetic programming on the alpha language's own syntax trees (pure, seeded): random
trees, subtree mutation, window mutation, subtree crossover, all within a depth limit; every
child is checked to compile (a window stays a number), so each candidate is an alpha text.

>>> import random
>>> rng = random.Random(1)
>>> a, b = parse("rank(ts_delta(close, 5))"), parse("zscore(volume) * returns")
>>> child = crossover(rng, a, b, max_depth=4)
>>> depth(child) <= 4, compiles(child)
(True, True)
"""

from __future__ import annotations

import random
from collections.abc import Callable

from qmtl.alpha.functions import FUNCTIONS, lookup, to_expr
from qmtl.alpha.generate import WINDOWS, random_alpha
from qmtl.alpha.syntax import AlphaSyntaxError, Binary, Call, Node, Num, Unary, unparse
from qmtl.alpha.syntax import parse as parse  # the doctests read trees from text

__all__ = ["breed", "compiles", "crossover", "depth", "mutate", "subtrees"]


def depth(node: Node) -> int:
    """Levels of operators in a tree (a field or a number is 0).

    >>> depth(parse("rank(ts_mean(close, 5))"))
    2
    """
    if isinstance(node, Call):
        return 1 + max((depth(a) for a in node.args), default=0)
    if isinstance(node, Unary):
        return 1 + depth(node.operand)
    if isinstance(node, Binary):
        return 1 + max(depth(node.left), depth(node.right))
    return 0


def subtrees(node: Node) -> list[tuple[tuple[int, ...], Node]]:
    """Every subtree with its path (child positions from the root), root first; a call's
    window arguments are left out (they are mutated as numbers).

    >>> [unparse(n) for _, n in subtrees(parse("ts_mean(close, 5) + open"))]
    ['ts_mean(close, 5) + open', 'ts_mean(close, 5)', 'close', 'open']
    """
    out: list[tuple[tuple[int, ...], Node]] = [((), node)]
    for i, child in _children(node):
        out.extend(((i, *p), n) for p, n in subtrees(child))
    return out


def _children(node: Node) -> list[tuple[int, Node]]:
    if isinstance(node, Call):
        op = lookup(node.name)
        kinds = FUNCTIONS[op].args if op else ()
        return [(i, a) for i, a in enumerate(node.args)
                if i >= len(kinds) or kinds[i] not in ("d", "a", "group")]
    if isinstance(node, Unary):
        return [(0, node.operand)]
    if isinstance(node, Binary):
        return [(0, node.left), (1, node.right)]
    return []


def _replace(node: Node, path: tuple[int, ...], new: Node) -> Node:
    if not path:
        return new
    i, rest = path[0], path[1:]
    if isinstance(node, Call):
        args = list(node.args)
        args[i] = _replace(args[i], rest, new)
        return Call(node.name, tuple(args))
    if isinstance(node, Unary):
        return Unary(node.op, _replace(node.operand, rest, new))
    assert isinstance(node, Binary)
    if i == 0:
        return Binary(node.op, _replace(node.left, rest, new), node.right)
    return Binary(node.op, node.left, _replace(node.right, rest, new))


def compiles(node: Node) -> bool:
    """Whether a tree is a valid alpha (no groups).

    >>> compiles(parse("ts_mean(close, open)")), compiles(parse("ts_mean(close, 3)"))
    (False, True)
    """
    try:
        to_expr(node, unparse(node))
    except (AlphaSyntaxError, ValueError):
        return False
    return True


def _windows(rng: random.Random, node: Node) -> Node:
    """One window argument moved to another of :data:`WINDOWS` (the tree if none)."""
    spots = []
    for path, sub in subtrees(node):
        if isinstance(sub, Call) and (op := lookup(sub.name)):
            spots += [(path, sub, i) for i, k in enumerate(FUNCTIONS[op].args) if k == "d"
                      and i < len(sub.args)]
    if not spots:
        return node
    path, call, i = rng.choice(spots)
    args = list(call.args)
    args[i] = Num(float(rng.choice(WINDOWS)))
    return _replace(node, path, Call(call.name, tuple(args)))


def _retry(make: Callable[[], Node], fallback: Node, max_depth: int, tries: int = 20) -> Node:
    for _ in range(tries):
        child = make()
        if depth(child) <= max_depth and compiles(child):
            return child
    return fallback


def mutate(rng: random.Random, tree: Node, max_depth: int) -> Node:
    """A random subtree replaced by a new random one, or a window changed (a third of the
    time); a valid tree within ``max_depth`` (the parent if 20 tries fail).

    >>> t = mutate(random.Random(2), parse("rank(ts_delta(close, 5))"), 3)
    >>> depth(t) <= 3 and compiles(t)
    True
    """
    def make() -> Node:
        if rng.random() < 1 / 3:
            return _windows(rng, tree)
        path, _ = rng.choice(subtrees(tree))
        return _replace(tree, path, random_alpha(rng, max(1, max_depth - len(path))))

    return _retry(make, tree, max_depth)


def crossover(rng: random.Random, a: Node, b: Node, max_depth: int) -> Node:
    """``a`` with a random subtree replaced by a random subtree of ``b`` (valid, within
    ``max_depth``; ``a`` if 20 tries fail)."""
    def make() -> Node:
        path, _ = rng.choice(subtrees(a))
        _, donor = rng.choice(subtrees(b))
        return _replace(a, path, donor)

    return _retry(make, a, max_depth)


def breed(rng: random.Random, ranked: list[Node], n: int, max_depth: int,
          elite: int = 2, p_cross: float = 0.6) -> list[Node]:
    """The next population of ``n`` from ``ranked`` (best first): the ``elite`` best kept,
    the rest children of tournament picks (size 3), by crossover (``p_cross``) or mutation.

    >>> pop = [parse(t) for t in ("rank(close)", "rank(volume)", "zscore(returns)")]
    >>> len(breed(random.Random(0), pop, 5, 3))
    5
    """
    def pick() -> Node:
        return ranked[min(rng.randrange(len(ranked)) for _ in range(3))]

    out = list(ranked[:elite])
    while len(out) < n:
        if rng.random() < p_cross:
            out.append(crossover(rng, pick(), pick(), max_depth))
        else:
            out.append(mutate(rng, pick(), max_depth))
    return out
