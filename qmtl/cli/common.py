"""What every command shares: the console, the common options, one error handler, and how
metrics, progress and the data provider are shown.

Errors print one readable line (``error: ...``) and exit non-zero; ``--debug`` shows the
traceback instead. Every error QMTL raises derives from :class:`qmtl.core.errors.QmtlError`
and is reported by its message with its exit code; an ``OSError`` (a file that cannot be
read or written) by its message, exit 1; anything else is an internal error, exit 2.

>>> format_metric("sharpe", 1.5)
'1.500'
"""

from __future__ import annotations

import contextlib
import errno
import math
import resource
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from qmtl.cli.terminal import safe_markup
from qmtl.core.errors import QmtlError, disk_full
from qmtl.loader import load_strategy
from qmtl.strategy import Strategy

if TYPE_CHECKING:
    from connectors.data.seamless import SeamlessDataProvider

console = Console()
err_console = Console(stderr=True)

TargetArg = Annotated[str, typer.Argument(help="Strategy file, FILE.py or FILE.py:Class.")]
SymbolsOpt = Annotated[str | None, typer.Option(help="Comma-separated universe.")]
StartOpt = Annotated[str | None, typer.Option(help="First bar time (ISO date).")]
EndOpt = Annotated[str | None, typer.Option(help="Last bar time (ISO date).")]
ParamOpt = Annotated[
    list[str] | None, typer.Option("-p", "--param", help="Parameter override name=value.")
]
CostOpt = Annotated[float | None, typer.Option(help="Cost per unit turnover, bp.")]
DataOpt = Annotated[Path | None, typer.Option(help="Catalog folder ($QMTL_DATA).")]
OriginOpt = Annotated[
    str | None,
    typer.Option(help="Backfill what the catalog lacks from folder:PATH or ccxt:EXCHANGE "
                      "($QMTL_ORIGIN)."),
]
DebugOpt = Annotated[bool, typer.Option(help="Show tracebacks.")]

PERCENT_METRICS = {"total_return", "cagr", "volatility", "max_drawdown", "win_rate", "exposure"}


class UsageError(QmtlError, ValueError):
    """A command-line argument or setting is malformed (the message says which).

    >>> error_exit(UsageError("-p expects name=value, got 'fast'")).exit_code
    1
    """


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print ``error: message`` to stderr and return the Exit to raise.

    >>> isinstance(fail("x"), typer.Exit)
    True
    """
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@contextlib.contextmanager
def errors_as_exit(debug: bool) -> Iterator[None]:
    """Turn an error into one ``error:`` line and a non-zero exit (the traceback with
    ``--debug``).

    >>> with errors_as_exit(debug=True):
    ...     pass
    """
    try:
        yield
    except typer.Exit:
        raise
    except Exception as exc:
        if debug:
            raise
        raise error_exit(exc) from None


def parse_params(items: list[str]) -> dict[str, str]:
    """``["fast=20", "slow=100"]`` -> ``{"fast": "20", "slow": "100"}``.

    >>> parse_params(["fast=20"])
    {'fast': '20'}
    >>> parse_params(["fast"])
    Traceback (most recent call last):
    ...
    qmtl.cli.common.UsageError: -p expects name=value, got 'fast'
    """
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise UsageError(f"-p expects name=value, got {item!r}")
        out[name.strip()] = value
    return out


def format_metric(name: str, value: float) -> str:
    """Human formatting of one metric value.

    >>> format_metric("sharpe", 1.23456), format_metric("max_drawdown", 0.1234)
    ('1.235', '12.34%')
    >>> format_metric("n_bars", 2520.0), format_metric("calmar", float("nan"))
    ('2520', '-')
    """
    if not math.isfinite(value):
        return "-" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if name == "n_bars":
        return f"{int(value)}"
    if name in PERCENT_METRICS:
        return f"{value * 100:.2f}%"
    return f"{value:.3f}"


def metrics_table(title: str, metrics: dict[str, float]) -> Table:
    """A rich table of metrics in display order.

    >>> metrics_table("t", {"sharpe": 1.0}).row_count
    1
    """
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in metrics.items():
        table.add_row(name, format_metric(name, value))
    return table


def error_exit(exc: BaseException) -> typer.Exit:
    """The one mapping of an error to the CLI's ``error:`` line and exit status: a
    :class:`QmtlError` by its message and exit code; an ``OSError`` (a file or folder that
    cannot be read or written: the message names it) by its message, exit 1; anything else
    (a ``ValueError``, ``KeyError``... QMTL did not expect) is an internal error, exit 2. A
    full disk (``ENOSPC``, ``EDQUOT``, also as the cause of another error) is
    ``no space left on device: PATH``, exit 1.

    >>> error_exit(QmtlError("no bars")).exit_code
    1
    >>> error_exit(PermissionError(13, "Permission denied", "/runs")).exit_code
    1
    >>> error_exit(KeyError("ts")).exit_code, error_exit(ValueError("bug")).exit_code
    (2, 2)
    >>> error_exit(OSError(28, "No space left on device")).exit_code
    1
    >>> error_exit(OSError(errno.EMFILE, "Too many open files")).exit_code
    1
    """
    if isinstance(exc, QmtlError):
        return fail(safe_markup(exc, lines=True), code=exc.exit_code)
    full = disk_full(exc)
    if full is not None:  # also a step's error Bytewax wrapped in its own
        where = full.filename if full.filename is not None else "a file being written"
        return fail(safe_markup(f"no space left on device: {where}"))
    if isinstance(exc, OSError) and exc.errno in (errno.EMFILE, errno.ENFILE):
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        where = f": {exc.filename}" if exc.filename is not None else ""
        return fail(safe_markup(f"too many open files{where} (this process may open {soft}; "
                                "raise the limit with `ulimit -n`)"))
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return fail(safe_markup(f"{exc.strerror}: {exc.filename}"))
    return fail(
        safe_markup(f"internal error: {type(exc).__name__}: {exc}", lines=True)
        + " (rerun with --debug for the traceback)",
        code=2,
    )


def load_target(
    target: str, param: list[str] | None, symbols: str | None
) -> tuple[type[Strategy], dict[str, str], list[str] | None]:
    """The strategy class, its ``-p`` overrides and the ``--symbols`` universe.

    >>> import tempfile, pathlib
    >>> f = pathlib.Path(tempfile.mkdtemp()) / "s.py"
    >>> _ = f.write_text("from qmtl import Strategy\\nclass S(Strategy):\\n    n: int = 1\\n")
    >>> cls, params, universe = load_target(str(f), ["n=2"], "A, B")
    >>> cls.__name__, params, universe
    ('S', {'n': '2'}, ['A', 'B'])
    """
    params = parse_params(param or [])
    cls = load_strategy(target)
    universe = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
    return cls, params, universe


def progress_bar(console: Console | None = None) -> Progress:
    """The progress display of replays and fetches (hidden when stderr is not a terminal).

    >>> progress_bar().columns[0].text_format
    '[bold]{task.description}[/]'
    """
    return Progress(
        TextColumn("[bold]{task.description}[/]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("bars"),
        TimeElapsedColumn(),
        console=console or err_console,
        transient=True,
        disable=not (console or err_console).is_terminal,
    )


class RichFetchProgress:
    """Shows each fetch of the data provider as a bar in a rich ``Progress``.

    >>> p = RichFetchProgress(progress_bar())
    >>> p.begin("backfill AAPL", 10); p.advance(4); p.end()
    """

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self._task: Any = None

    def begin(self, label: str, total: int | None) -> None:
        """Add a bar for the fetch."""
        self._task = self.progress.add_task(label, total=total)

    def advance(self, rows: int) -> None:
        """Move the bar."""
        if self._task is not None:
            self.progress.advance(self._task, rows)

    def end(self) -> None:
        """Remove the bar (its result is printed by the command)."""
        if self._task is not None:
            self.progress.remove_task(self._task)
            self._task = None


def make_provider(
    data: Path | None, origin: str | None = None, questdb: str | None = None,
    progress: Progress | None = None,
) -> SeamlessDataProvider:
    """The data provider for a command: the environment's, with these options on top; a
    malformed option or variable (``--origin``, ``QMTL_ORIGIN``, ``QMTL_CACHE_BYTES``...) is a
    :class:`UsageError`.

    >>> make_provider(None, origin="nowhere:x")
    Traceback (most recent call last):
    ...
    qmtl.cli.common.UsageError: ...nowhere:x...
    """
    # the data layer loads when a command reads data (see qmtl.cli)
    from connectors.data.seamless import SeamlessDataProvider

    try:
        return SeamlessDataProvider.from_env(
            data, origin=origin, questdb=questdb,
            progress=RichFetchProgress(progress) if progress is not None else None,
        )
    except QmtlError:
        raise
    except ValueError as exc:  # the provider's settings come from the user's options
        raise UsageError(str(exc)) from None


def print_notes(provider: SeamlessDataProvider) -> None:
    """What the provider fetched and noticed, on stderr (one line each).

    >>> print_notes(make_provider(None))  # nothing fetched yet
    """
    for fetch in provider.fetches:
        err_console.print(f"fetched {fetch}", highlight=False, soft_wrap=True)
    for note in provider.notes:
        err_console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
