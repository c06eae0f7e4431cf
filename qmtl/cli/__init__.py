"""The ``qmtl`` command line: one module per command group, assembled here.

``run`` (:mod:`qmtl.cli.run`), ``submit`` (:mod:`qmtl.cli.submit`), ``data``
(:mod:`qmtl.cli.data`), ``world`` (:mod:`qmtl.cli.world`) and ``feed`` (:mod:`qmtl.cli.feed`);
what they share (options, the one error handler, output) is in :mod:`qmtl.cli.common`.

>>> from typer.testing import CliRunner
>>> CliRunner().invoke(app, ["--help"]).exit_code
0
"""

from __future__ import annotations

import sys
from typing import Any

import typer

from qmtl.cli.data import data_app
from qmtl.cli.feed import feed_app
from qmtl.cli.run import run
from qmtl.cli.submit import submit
from qmtl.cli.world import world_app

app = typer.Typer(
    help="QMTL: write a strategy once; replay it fast, run it live, let a world allocate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.command()(run)
app.command()(submit)
app.add_typer(data_app, name="data")
app.add_typer(world_app, name="world")
app.add_typer(feed_app, name="feed")


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``qmtl`` console script."""
    return app(args=argv if argv is not None else sys.argv[1:])
