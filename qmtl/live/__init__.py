"""``qmtl run --mode live``: the backtest's compiled graph, fed one bar at a time.

The flow is the backtest's core (:func:`dataflows.compiler.build_core`: the same steps and
node ids) between a live source and live sinks::

    live source: warm-up on history, then the feed (Kafka topic, or the catalog in process)
      -> route: bars to the core, bad messages to <topic>.dlq
      -> core: evaluate per symbol -> portfolio per strategy   (identical to the backtest)
      -> report: per-bar rows and metrics.json in --out, MetricsUpdates to the world
      -> orders: the gate (activation from the world, fails closed) -> order store
                 (-> paper broker fills at the next open) -> Kafka orders/fills topics

With ``--recovery-dir`` the flow snapshots its state (Bytewax recovery) with the feed's
offsets; a killed run restarted with the same directory resumes from its last snapshot
(:mod:`dataflows.recovery`). What it emits again after a restart is deduplicated where it
lands: the world ignores a MetricsUpdate seq it has seen, the order store an order key it
holds, the run folder rows it has written; the result counts the orders and fills this run
added apart from those already recorded. Without ``--brokers`` the feed is the catalog
replayed in process at ``--speed``; without ``--url`` the world is served in process from a
SQLite file, so a new user can watch a paper run with nothing else started.

The package, by job:

- :mod:`qmtl.live.options`: :class:`LiveOptions`, :class:`LiveResult`, :class:`LiveError`;
- :mod:`qmtl.live.handoff`: the warm-up history, the hand-off to the feed, the feed;
- :mod:`qmtl.live.report`: the run folder and the world's metrics (:class:`RunReport`);
- :mod:`qmtl.live.embedded_world`: the world served in process;
- :mod:`qmtl.live.runner`: :func:`run_live`, which puts them together with the engine's
  :func:`dataflows.live_flow.build_live_flow`.

>>> from qmtl.live import LiveOptions, run_live
>>> LiveOptions(paper=True).world
'local'
"""

from __future__ import annotations

from dataflows.recovery import META_FILE
from qmtl.live.options import LiveError, LiveOptions, LiveResult
from qmtl.live.report import RunReport
from qmtl.live.runner import run_live

__all__ = [
    "META_FILE",
    "LiveError",
    "LiveOptions",
    "LiveResult",
    "RunReport",
    "run_live",
]
