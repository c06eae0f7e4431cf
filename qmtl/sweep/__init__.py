"""Parameter sweeps: many variants of a strategy in one Bytewax flow, ranked, with the
statistics that say how much of the best result is luck (see ``docs/sweeps.md``).

``grid`` (value syntax, ``where``, random draws), ``plan`` (variants as engine specs),
``cluster`` (a cluster of processes), ``result`` (the table, ranking, walk-forward),
``stats`` (deflated Sharpe, PBO), ``heatmap`` (the offline HTML page), ``run`` (the API).

>>> from qmtl.sweep import sweep, sweep_many
>>> sweep.__module__
'qmtl.sweep.run'
"""

from __future__ import annotations

from qmtl.sweep.grid import GridError
from qmtl.sweep.result import SweepError, SweepResult
from qmtl.sweep.run import sweep, sweep_many

__all__ = ["GridError", "SweepError", "SweepResult", "sweep", "sweep_many"]
