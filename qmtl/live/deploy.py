"""What a world runner should run, decided from the world's views (pure: no I/O).

A strategy is *wanted* by the runners of its world when the world trades it: its stage is
``paper`` or ``live`` (a world that manages stages), or it is active (a world without
stages), and no operator override holds it inactive for good (one without expiry). A
runner holds a lease on each strategy it runs (``world_api.service.runner_store``);
:func:`plan` says which runs to start and which to stop given the leases it holds.

>>> views = [{"strategy_id": "a", "stage": "paper", "active": True, "override": None},
...          {"strategy_id": "b", "stage": "backtest", "active": False, "override": None},
...          {"strategy_id": "c", "stage": None, "active": True, "override": None}]
>>> wanted(views)
['a', 'c']
>>> plan(held=["a", "c"], running=["a", "z"], refused={"c": "x"}, artifacts={"c": "x"})
([], ['z'])
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

TRADED_STAGES = ("paper", "live")
"""The stages a runner runs (``--shadow`` adds the others: ``backtest``, and the inactive
strategies of a world without stages)."""


def is_wanted(view: Mapping[str, Any], shadow: bool = False) -> bool:
    """Whether the world trades the strategy of ``view`` (see the module docstring); with
    ``shadow``, whether a shadow runner runs it: every strategy of the world but those an
    operator holds inactive for good (the others run with their orders held).

    >>> is_wanted({"stage": "live", "active": False, "override": None})
    True
    >>> is_wanted({"stage": "paper", "override": {"state": "inactive", "expires": None}})
    False
    >>> is_wanted({"stage": "backtest"}), is_wanted({"stage": "backtest"}, shadow=True)
    (False, True)
    >>> is_wanted({"stage": None, "active": False}, shadow=True)
    True
    >>> is_wanted({"stage": "backtest", "override": {"state": "inactive", "expires": None}},
    ...           shadow=True)
    False
    """
    over = view.get("override")
    if over and over.get("state") == "inactive" and over.get("expires") is None:
        return False
    if shadow:
        return True
    stage = view.get("stage")
    if stage is None:
        return bool(view.get("active"))
    return stage in TRADED_STAGES


def wanted(views: Iterable[Mapping[str, Any]], shadow: bool = False) -> list[str]:
    """The ids of the wanted strategies among ``views`` (``shadow``: by a shadow runner),
    sorted.

    >>> wanted([{"strategy_id": "x", "stage": "backtest"}])
    []
    >>> wanted([{"strategy_id": "x", "stage": "backtest"}], shadow=True)
    ['x']
    """
    return sorted(str(v["strategy_id"]) for v in views if is_wanted(v, shadow))


def plan(
    held: Collection[str],
    running: Collection[str],
    refused: Mapping[str, str],
    artifacts: Mapping[str, str],
) -> tuple[list[str], list[str]]:
    """``(start, stop)``: the held strategies not running, except those refused for the
    artifact they still have (``refused`` and ``artifacts``: strategy -> artifact id; a new
    artifact is tried again); the running ones no longer held.

    >>> plan(["a"], [], {"a": "old"}, {"a": "new"})
    (['a'], [])
    """
    start = [s for s in sorted(held) if s not in running and refused.get(s) != artifacts.get(s, "")]
    stop = sorted(s for s in running if s not in held)
    return start, stop
