"""``qmtl report`` (the tear sheet of a run folder) and ``qmtl compare`` (runs side by side).

plotly and the report package load when one of these commands runs (see :mod:`qmtl.cli`).

>>> from typer.testing import CliRunner
>>> from qmtl.cli import app
>>> CliRunner().invoke(app, ["report", "--help"]).exit_code
0
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from qmtl.cli.common import DebugOpt, UsageError, console, errors_as_exit, fail

RUN_FILES = ("metrics.json", "bars.parquet")
"""What a report reads of a run folder: ``--out`` never writes onto one of them."""

RunArg = Annotated[Path, typer.Argument(help="A run folder (what `qmtl run` writes).")]
BenchmarkOpt = Annotated[
    str | None,
    typer.Option(
        help="Benchmark on buying and holding this symbol of the run (default: the "
        "run's universe in equal parts)."
    ),
]


def report(
    run_dir: RunArg,
    benchmark: BenchmarkOpt = None,
    out: Annotated[
        Path | None, typer.Option(help="HTML file to write (default RUN_DIR/report.html).")
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Write the tear sheet of a run folder: one HTML file that opens offline.

    Equity against a benchmark, drawdown, monthly and yearly returns, rolling Sharpe and
    volatility, the distribution of returns, exposure and turnover, each symbol's
    contribution, the round-trip trades, and the metrics with every setting of the run, as
    `metrics.json` holds them. Prints the file's path.
    """
    with errors_as_exit(debug):
        check_out(out, [run_dir])
        from qmtl.report import load_run, write_report  # plotly loads with the command

        run = load_run(run_dir)
        path = write_report(run, out or run_dir / "report.html", benchmark)
    console.print(f"wrote {path}", highlight=False, soft_wrap=True)


def compare(
    run_dirs: Annotated[list[Path], typer.Argument(help="Run folders to compare.")],
    out: Annotated[
        Path | None,
        typer.Option(
            help="Also write the comparison, with equity curves overlaid, to this HTML file."
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Compare runs: their metrics side by side in the terminal, and with `--out`, an HTML
    page with the metrics, the settings that differ and the equity and drawdown curves
    overlaid.
    """
    if not run_dirs:
        raise fail("compare needs at least one run folder")
    with errors_as_exit(debug):
        check_out(out, run_dirs)
        from qmtl.report import compare_table, load_run, write_compare

        runs = [load_run(d) for d in run_dirs]
        console.print(compare_table(runs))
        if out is not None:
            console.print(f"wrote {write_compare(runs, out)}", highlight=False, soft_wrap=True)


def check_out(out: Path | None, run_dirs: list[Path]) -> None:
    """Refuse an ``--out`` that is a file the command reads (a run's ``metrics.json`` or
    ``bars.parquet``, by any name that reaches it) or a folder: the HTML would replace the
    run. Raises :class:`qmtl.cli.common.UsageError` naming both.

    >>> import tempfile
    >>> run = Path(tempfile.mkdtemp())
    >>> check_out(run / "report.html", [run])
    >>> check_out(run / "sub" / ".." / "bars.parquet", [run])
    Traceback (most recent call last):
    ...
    qmtl.cli.common.UsageError: --out .../bars.parquet is an input of the command ...
    """
    if out is None:
        return
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder: give the HTML file to write")
    target = Path(os.path.abspath(out)).resolve()
    for folder in run_dirs:
        for name in RUN_FILES:
            src = folder / name
            same = target == src.resolve()
            if not same and out.exists() and src.exists():
                same = os.path.samefile(out, src)
            if same:
                raise UsageError(
                    f"--out {out} is an input of the command ({src}): writing "
                    "the HTML there would replace the run; give another file"
                )
