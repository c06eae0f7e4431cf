"""The ``qmtl`` command line: one module per command group, assembled here.

``run`` (:mod:`qmtl.cli.run`), ``submit`` (:mod:`qmtl.cli.submit`), ``sweep``
(:mod:`qmtl.cli.sweep`), ``report`` and ``compare`` (:mod:`qmtl.cli.report`), ``data``
(:mod:`qmtl.cli.data`), ``world`` (:mod:`qmtl.cli.world`) and ``feed`` (:mod:`qmtl.cli.feed`);
what they share (options, the one error handler, output) is in :mod:`qmtl.cli.common`.

The command modules load when the app is first asked for (``qmtl.cli.app``, or ``main``
with any arguments but ``--version`` alone): ``qmtl --version`` prints without importing the
data and engine layers (pyarrow, Bytewax, httpx, pydantic).

Help is Markdown (``rich_markup_mode="markdown"``): a docstring's lines join into
paragraphs, so help reads well at any terminal width; write ``WORD`` rather than ``<word>``.

>>> from typer.testing import CliRunner
>>> from qmtl.cli import app
>>> CliRunner().invoke(app, ["--help"]).exit_code
0
>>> CliRunner().invoke(app, ["--version"]).output.startswith("qmtl ")
True
"""

import functools
import sys
from typing import TYPE_CHECKING, Annotated, Any

from qmtl import __version__

if TYPE_CHECKING:
    import typer


def print_version(value: bool) -> None:
    """``--version``: print ``qmtl X.Y.Z`` (the installed package's version) and exit."""
    import typer

    if value:
        print(f"qmtl {__version__}")
        raise typer.Exit()


@functools.cache
def _app() -> "typer.Typer":
    """The ``qmtl`` app with every command (imports the command modules; no postponed
    annotations in this file: Typer reads the options' annotations of ``_options``, defined
    here where ``typer`` is imported)."""
    import typer

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
    from qmtl.cli.world_run import run_world as _run_world  # noqa: F401  (qmtl world run)
    from qmtl.cli.world_stages import approve as _approve  # noqa: F401  (qmtl world approve)

    app = typer.Typer(
        help="QMTL: write a strategy once; replay it fast, run it live, let a world allocate.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        rich_markup_mode="markdown",
    )

    @app.callback()
    def _options(
        version: Annotated[
            bool,
            typer.Option(
                "--version",
                callback=print_version,
                is_eager=True,
                help="Print the version of qmtl and exit.",
            ),
        ] = False,
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
    return app


def __getattr__(name: str) -> Any:
    if name == "app":
        return _app()
    raise AttributeError(f"module 'qmtl.cli' has no attribute {name!r}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``qmtl`` console script (also as ``python -m qmtl.cli``);
    ``--version`` alone answers without loading the commands.

    >>> main(["--version"])  # doctest: +ELLIPSIS
    qmtl ...
    """
    args = argv if argv is not None else sys.argv[1:]
    if args == ["--version"]:
        print(f"qmtl {__version__}")
        return
    _app()(args=args, prog_name="qmtl")
