"""The ``qmtl`` command line.

Errors print one readable line (``error: ...``) and exit non-zero; ``--debug`` shows the
traceback instead.

>>> from typer.testing import CliRunner
>>> CliRunner().invoke(app, ["--help"]).exit_code
0
"""

from __future__ import annotations

import contextlib
import datetime as dt
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

app = typer.Typer(
    help="QMTL: write a strategy once; replay it fast, run it live, let a world allocate.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
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


def _mount_subapps() -> None:
    try:
        from qmtl.cli_data import data_app

        app.add_typer(data_app, name="data")
    except ImportError:  # pragma: no cover - partial installs
        pass
    try:
        from world_api.cli import world_app

        app.add_typer(world_app, name="world")
    except ImportError:  # pragma: no cover
        pass
    from qmtl.cli_live import feed_app

    app.add_typer(feed_app, name="feed")


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
        raise _error_exit(exc) from None


def parse_params(items: list[str]) -> dict[str, str]:
    """``["fast=20", "slow=100"]`` -> ``{"fast": "20", "slow": "100"}``.

    >>> parse_params(["fast=20"])
    {'fast': '20'}
    >>> parse_params(["fast"])
    Traceback (most recent call last):
    ...
    ValueError: -p expects name=value, got 'fast'
    """
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ValueError(f"-p expects name=value, got {item!r}")
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


def _load(
    target: str, param: list[str] | None, symbols: str | None
) -> tuple[Any, dict[str, str], list[str] | None]:
    """The strategy class, its ``-p`` overrides and the ``--symbols`` universe."""
    from qmtl.loader import load_strategy

    params = parse_params(param or [])
    cls = load_strategy(target)
    universe = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
    return cls, params, universe


def _progress() -> Progress:
    from qmtl.cli_data import progress_bar

    return progress_bar(err_console)


@app.command()
def run(
    target: TargetArg,
    mode: Annotated[str, typer.Option(help="backtest (replay history) or live.")] = "backtest",
    symbols: SymbolsOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    param: ParamOpt = None,
    cost_bps: CostOpt = None,
    batch_size: Annotated[int, typer.Option(help="Bars per replay batch.")] = 10_000,
    workers: Annotated[int, typer.Option(help="Bytewax workers.")] = 1,
    periods_per_year: Annotated[float | None, typer.Option(help="Annualization override.")] = None,
    on_bad_bars: Annotated[str, typer.Option(help="raise or drop.")] = "raise",
    data: DataOpt = None,
    origin: OriginOpt = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default ./runs/...).")] = None,
    debug: DebugOpt = False,
    # -- live -------------------------------------------------------------------------------
    brokers: Annotated[str | None, typer.Option(
        envvar="QMTL_BROKERS", help="Live: Kafka host:port (default: replay the catalog in "
        "process at --speed).", rich_help_panel="Live")] = None,
    topic: Annotated[str, typer.Option(help="Live: topic of bars.",
                                       rich_help_panel="Live")] = "bars",
    group: Annotated[str | None, typer.Option(help="Live: consumer group (default "
                     "qmtl-<world>-<strategy>).", rich_help_panel="Live")] = None,
    world: Annotated[str, typer.Option(help="Live: world id.", rich_help_panel="Live")] = (
        "local"
    ),
    url: Annotated[str | None, typer.Option(
        envvar="QMTL_WORLD_URL", help="Live: WorldService URL (default: a world served in "
        "process on SQLite).", rich_help_panel="Live")] = None,
    token: Annotated[str | None, typer.Option(envvar="QMTL_TOKEN", help="Live: bearer token.",
                                              rich_help_panel="Live")] = None,
    paper: Annotated[bool, typer.Option(help="Live: fill orders on the paper broker.",
                                        rich_help_panel="Live")] = False,
    recovery_dir: Annotated[Path | None, typer.Option(
        help="Live: keep recovery snapshots here; rerun with it to resume.",
        rich_help_panel="Live")] = None,
    snapshot_interval: Annotated[float, typer.Option(help="Live: seconds between snapshots.",
                                                     rich_help_panel="Live")] = 1.0,
    max_bars: Annotated[int | None, typer.Option(help="Live: stop after N live bars.",
                                                 rich_help_panel="Live")] = None,
    stop_after_idle: Annotated[float | None, typer.Option(
        help="Live: stop after SECONDS without bars.", rich_help_panel="Live")] = None,
    warmup: Annotated[int | None, typer.Option(
        help="Live: bars of history to warm up on (default: the graph's look-back + 1).",
        rich_help_panel="Live")] = None,
    speed: Annotated[str, typer.Option(help="Live without --brokers: max, Nx or N/s.",
                                       rich_help_panel="Live")] = "10/s",
    max_activation_age: Annotated[float, typer.Option(
        help="Live: hold orders when the world has not confirmed the activation for this "
        "many seconds.", rich_help_panel="Live")] = 30.0,
    slippage_bps: Annotated[float, typer.Option(help="Paper: slippage, bp.",
                                                rich_help_panel="Live")] = 0.0,
    fee_bps: Annotated[float, typer.Option(help="Paper: fee, bp of notional.",
                                           rich_help_panel="Live")] = 0.0,
    orders_store: Annotated[str | None, typer.Option(
        help="Live: orders/fills/positions store, a file or postgresql:// URL.",
        rich_help_panel="Live")] = None,
    orders_topic: Annotated[str, typer.Option(help="Live: topic for OrderIntents.",
                                              rich_help_panel="Live")] = "orders",
    fills_topic: Annotated[str, typer.Option(help="Live: topic for fills.",
                                             rich_help_panel="Live")] = "fills",
    metrics_every: Annotated[int, typer.Option(help="Live: bars between MetricsUpdates.",
                                               rich_help_panel="Live")] = 1,
    max_gap_bars: Annotated[int, typer.Option(
        help="Live: bars that may be missing between history and the first live bar.",
        rich_help_panel="Live")] = 0,
    policy: Annotated[str | None, typer.Option(
        help="Live without --url: policy file of the embedded world.",
        rich_help_panel="Live")] = None,
    strategy_id: Annotated[str | None, typer.Option("--id", help="Live: strategy id (class "
                           "name).", rich_help_panel="Live")] = None,
) -> None:
    """Run a strategy: replay history through it (--mode backtest), or run the same graph
    on a live feed (--mode live). Bars come from the catalog; what it lacks is fetched from
    QuestDB or the backfill origin, if configured."""
    if mode not in ("backtest", "live"):
        raise fail(f"--mode must be 'backtest' or 'live', got {mode!r}")
    if mode == "live":
        from qmtl.live import LiveOptions

        options = LiveOptions(
            brokers=brokers, topic=topic, group=group, world=world, url=url, token=token,
            paper=paper, data=data, start=start, end=end, cost_bps=cost_bps,
            strategy_id=strategy_id, warmup=warmup, speed=speed, max_bars=max_bars,
            stop_after_idle=stop_after_idle, recovery_dir=recovery_dir,
            snapshot_interval=snapshot_interval, out=out, orders_store=orders_store,
            orders_topic=orders_topic, fills_topic=fills_topic,
            max_activation_age=max_activation_age, slippage_bps=slippage_bps, fee_bps=fee_bps,
            metrics_every=metrics_every, max_gap_bars=max_gap_bars, workers=workers,
            periods_per_year=periods_per_year, policy=policy, origin=origin,
        )
        with errors_as_exit(debug):
            from qmtl.cli_live import run_live_command

            cls, params, universe = _load(target, param, symbols)
            options.symbols = universe
            run_live_command(cls, params, options, debug)
        return
    if on_bad_bars not in ("raise", "drop"):
        raise fail(f"--on-bad-bars must be 'raise' or 'drop', got {on_bad_bars!r}")
    with errors_as_exit(debug):
        from qmtl.cli_data import make_provider, print_notes
        from qmtl.runner import backtest

        cls, params, universe = _load(target, param, symbols)
        with _progress() as progress:
            provider = make_provider(data, origin, None, progress)
            task = progress.add_task("replay", total=None)
            result = backtest(
                cls,
                provider,
                symbols=universe,
                start=start,
                end=end,
                cost_bps=cost_bps,
                batch_size=batch_size,
                workers=workers,
                periods_per_year=periods_per_year,
                on_bad_bars=on_bad_bars,  # type: ignore[arg-type]
                progress=lambda n: progress.advance(task, n),
                on_start=lambda total: progress.update(task, total=total),
                **params,
            )
        print_notes(provider)
        folder = out or Path("runs") / (
            f"{result.strategy}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        )
        result.write(folder)
    title = f"{result.strategy} · {', '.join(result.symbols)} · {result.interval}"
    console.print(metrics_table(title, result.metrics))
    console.print(f"wrote {folder}/bars.parquet and {folder}/metrics.json "
                  f"(data fingerprint {result.data['fingerprint'][:12]})", highlight=False)


@app.command()
def submit(
    target: TargetArg,
    world: Annotated[str, typer.Option(help="World id.")],
    url: Annotated[str, typer.Option(envvar="QMTL_WORLD_URL", help="WorldService URL.")] = (
        "http://127.0.0.1:8600"
    ),
    token: Annotated[str | None, typer.Option(envvar="QMTL_TOKEN", help="Bearer token.")] = None,
    strategy_id: Annotated[str | None, typer.Option("--id", help="Strategy id (class name).")] = (
        None
    ),
    dry_run: Annotated[bool, typer.Option(help="Apply the world's policy locally only.")] = False,
    symbols: SymbolsOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    param: ParamOpt = None,
    cost_bps: CostOpt = None,
    data: DataOpt = None,
    origin: OriginOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Backtest a strategy, stream its metrics to a world, print the world's decision."""
    with errors_as_exit(debug):
        from qmtl.cli_data import make_provider, print_notes
        from qmtl.submit import submit as do_submit

        cls, params, universe = _load(target, param, symbols)
        with _progress() as progress:
            provider = make_provider(data, origin, None, progress)
            task = progress.add_task("replay", total=None)
            result = do_submit(
                cls,
                world,
                url,
                token,
                strategy_id=strategy_id,
                dry_run=dry_run,
                data=provider,
                symbols=universe,
                start=start,
                end=end,
                cost_bps=cost_bps,
                progress=lambda n: progress.advance(task, n),
                on_start=lambda total: progress.update(task, total=total),
                **params,
            )
        print_notes(provider)
    print_submit_result(result)


def print_submit_result(result: Any) -> None:
    """Print a SubmitResult: decision, hints, metrics."""
    colour = {"active": "green", "candidate": "yellow", "rejected": "red"}[result.status]
    head = f"[bold {colour}]{result.status}[/] · {result.strategy_id} in world {result.world}"
    if result.dry_run:
        head += " (dry run: the world's policy applied locally; nothing was sent)"
    console.print(head)
    rank = "-" if result.rank is None else str(result.rank)
    console.print(
        f"weight {result.weight:.3f} · rank {rank} · contribution "
        f"{result.contribution:.1%} · {result.n_bars} bars",
        highlight=False,
    )
    for hint in result.improvement_hints:
        console.print(f"  [yellow]hint:[/] {hint}", highlight=False)
    console.print(metrics_table("metrics", result.metrics))


def _error_exit(exc: BaseException) -> typer.Exit:
    from connectors.feeds import FeedError
    from connectors.live_source import HandOffGap
    from connectors.world_link import WorldUnavailable
    from qmtl.live import LiveError
    from qmtl.submit import SubmitError

    known = (ValueError, LookupError, OSError, TypeError, SubmitError, LiveError, FeedError,
             HandOffGap, WorldUnavailable)
    if isinstance(exc, KeyError) and exc.args:
        return fail(str(exc.args[0]))
    if isinstance(exc, known):
        return fail(str(exc))
    return fail(f"internal error: {type(exc).__name__}: {exc} (rerun with --debug)", code=2)


def main(argv: list[str] | None = None) -> Any:
    """Entry point of the ``qmtl`` console script."""
    return app(args=argv if argv is not None else sys.argv[1:])


_mount_subapps()
