"""The ``qmtl`` command line: one module per command group, assembled here.

``run`` (:mod:`qmtl.cli.run`), ``submit`` (:mod:`qmtl.cli.submit`), ``sweep``
(:mod:`qmtl.cli.sweep`), ``report`` and ``compare`` (:mod:`qmtl.cli.report`), ``data``
(:mod:`qmtl.cli.data`), ``world`` (:mod:`qmtl.cli.world`) and ``feed`` (:mod:`qmtl.cli.feed`);
what they share (options, the one error handler, output) is in :mod:`qmtl.cli.common`.

Help is Markdown (``rich_markup_mode="markdown"``): a docstring's lines join into
paragraphs, so help reads well at any terminal width; write ``WORD`` rather than ``<word>``.

>>> from typer.testing import CliRunner
>>> CliRunner().invoke(app, ["--help"]).exit_code
0
>>> CliRunner().invoke(app, ["--version"]).output.startswith("qmtl ")
True
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from qmtl import __version__
from qmtl.cli.common import console
from qmtl.cli.data import data_app
from qmtl.cli.feed import feed_app
from qmtl.cli.report import compare, report
from qmtl.cli.run import run
from qmtl.cli.submit import submit
from qmtl.cli.sweep import sweep
from qmtl.cli.world import world_app
from qmtl.cli.world_admin import delete, update  # noqa: F401 - attached to world_app
from qmtl.cli.world_ops import apply as _registers_world_ops  # noqa: F401
from qmtl.cli.world_owners import owner as _owner  # noqa: F401  (qmtl world owner)
from qmtl.cli.world_stages import approve as _approve  # noqa: F401  (qmtl world approve)

app = typer.Typer(
    help="QMTL: write a strategy once; replay it fast, run it live, let a world allocate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


def print_version(value: bool) -> None:
    """``--version``: print ``qmtl X.Y.Z`` (the installed package's version) and exit."""
    if value:
        console.print(f"qmtl {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def options(
    version: Annotated[bool, typer.Option(
        "--version", callback=print_version, is_eager=True,
        help="Print the version of qmtl and exit.")] = False,
) -> None:
    """Options of ``qmtl`` itself (before the command)."""


app.command()(run)
app.command()(submit)
app.command()(report)
app.command()(compare)
app.command()(sweep)
app.add_typer(data_app, name="data")
app.add_typer(world_app, name="world")
app.add_typer(feed_app, name="feed")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``qmtl`` console script (also as ``python -m qmtl.cli``)."""
    app(args=argv if argv is not None else sys.argv[1:], prog_name="qmtl")
