"""The table of ``qmtl``'s commands: where each lives and the line ``qmtl --help`` shows.

A new command goes here (and nowhere else): its module loads only when the command runs
(:mod:`qmtl.cli.lazy`).

>>> COMMANDS[0].name, COMMANDS[0].module
('run', 'qmtl.cli.run')
"""

from __future__ import annotations

from qmtl.cli.lazy import LazyCommand, LazyGroup

COMMANDS = (
    LazyCommand("run", "qmtl.cli.run", "run",
                "Run a strategy: replay history through it, or run the same graph live."),
    LazyCommand("submit", "qmtl.cli.submit", "submit",
                "Backtest a strategy, stream its metrics to a world, print the world's decision."),
    LazyCommand("report", "qmtl.cli.report", "report",
                "Write the tear sheet of a run folder: one HTML file that opens offline."),
    LazyCommand("compare", "qmtl.cli.report", "compare",
                "Compare runs: their metrics side by side in the terminal, and with `--out`, an "
                "HTML page with the metrics, the settings that differ and the equity and "
                "drawdown curves overlaid."),
    LazyCommand("sweep", "qmtl.cli.sweep", "sweep",
                "Run many variants of a strategy in one flow and rank them."),
    LazyCommand("factor", "qmtl.cli.factor", "factor",
                "Factor analysis: IC and rank IC per horizon (mean, ICIR, t-stat), IC decay, "
                "quantile returns, the top-minus-bottom spread, turnover, rank "
                "autocorrelation, IC by group and month; the numbers equal alphalens' where "
                "both define them (docs/alphas.md)."),
    LazyCommand("mine", "qmtl.cli.mine", "mine",
                "Search alphas by genetic programming on the alpha language's trees."),
    LazyCommand("data", "qmtl.cli.data", "data_app", "The local bar catalog."),
    LazyCommand("world", "qmtl.cli.world", "world_app",
                "The WorldService: serve, tokens, worlds, status.",
                also=("qmtl.cli.world_admin", "qmtl.cli.world_book", "qmtl.cli.world_ops",
                      "qmtl.cli.world_owners", "qmtl.cli.world_run", "qmtl.cli.world_stages",
                      "qmtl.cli.world_evaluate")),
    LazyCommand("feed", "qmtl.cli.feed", "feed_app", "Publish bars to a Kafka topic."),
)
"""The commands of ``qmtl``, in the order ``--help`` lists them (each loads on first use)."""


class Qmtl(LazyGroup):
    """The ``qmtl`` group: the commands of :data:`COMMANDS`, each loaded on first use.

    >>> [c.name for c in Qmtl.lazy][:3]
    ['run', 'submit', 'report']
    """

    lazy = COMMANDS


