"""World-side evaluation (policy ``evaluation: world``): who may write a backtest record,
and what the evaluator remembers it has done (pure; no I/O).

In a world whose policy says ``evaluation: world`` the backtest record is the world's own:
its evaluator (``qmtl world evaluate W``, a ``runner`` or ``operator`` token) backtests each
stored artifact on the world's market and posts the record with ``source: world``. A client
(a developer's token, the strategy's owner included) may not post a backtest update there:
its own backtest is a local preview (``qmtl submit --dry-run``, ``qmtl.validate``). Paper,
shadow and live updates are not affected (runners post them).

>>> refusal("world", "w", "backtest", "developer")  # doctest: +ELLIPSIS
"world 'w' evaluates backtests itself (policy evaluation: world): ..."
>>> refusal("world", "w", "paper", "developer") is None, refusal("client", "w", "backtest",
...                                                                "developer") is None
(True, True)
>>> eval_key("a1", 3, "fp")
'a1@m3@fp'
"""

from __future__ import annotations

import hashlib

WORLD_ROLES: tuple[str, ...] = ("runner", "operator")
"""The roles whose backtest updates a world that evaluates itself accepts (its evaluator's)."""


def refusal(evaluation: str, world: str, mode: str, role: str) -> str | None:
    """Why an update of ``mode`` posted by a ``role`` token is refused in ``world`` whose
    policy says ``evaluation`` (None: accepted).

    >>> refusal("world", "w", "backtest", "runner") is None
    True
    """
    if evaluation != "world" or mode != "backtest" or role in WORLD_ROLES:
        return None
    return (
        f"world {world!r} evaluates backtests itself (policy evaluation: world): its "
        "evaluator backtests the stored artifact on the world's market and writes the "
        "backtest record; a client's backtest is a local preview (qmtl submit --dry-run)"
    )


def eval_key(artifact_id: str, market_version: int | None, fingerprint: str | None) -> str:
    """What one evaluation is: an artifact, on a market version, on data with a
    fingerprint (the evaluator does each key once).

    >>> eval_key("a", None, None)
    'a@m0@-'
    """
    return f"{artifact_id}@m{market_version or 0}@{fingerprint or '-'}"


def run_id(artifact_id: str, key: str) -> str:
    """The run id of evaluation ``key``'s backtest record of artifact ``artifact_id``: the
    same key always posts the same run (a repost after a restart is a duplicate, never a
    second run), and it starts ``world-<artifact id[:12]>-`` so a submitter can tell the
    world has evaluated its artifact (:func:`evaluated`).

    >>> run_id("ab" * 32, "k") == run_id("ab" * 32, "k"), run_id("ab" * 32, "k")[:19]
    (True, 'world-abababababab-')
    """
    return f"world-{artifact_id[:12]}-" + hashlib.sha256(key.encode()).hexdigest()[:10]


def evaluated(artifact_id: str, runs: list[str]) -> bool:
    """Whether a backtest record's ``runs`` hold a world evaluation of ``artifact_id``.

    >>> evaluated("ab" * 32, [run_id("ab" * 32, "k")]), evaluated("cd" * 32, ["r1"])
    (True, False)
    """
    return any(r.startswith(f"world-{artifact_id[:12]}-") for r in runs)
