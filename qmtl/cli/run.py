"""``qmtl run``: replay history through a strategy (``--mode backtest``) or run the same graph
on a live feed (``--mode live``).

>>> from typer.testing import CliRunner
>>> from qmtl.cli import app
>>> CliRunner().invoke(app, ["run", "--help"]).exit_code
0
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from qmtl.cli.common import (
    CostOpt,
    DataOpt,
    DebugOpt,
    EndOpt,
    OriginOpt,
    ParamOpt,
    StartOpt,
    SymbolsOpt,
    UsageError,
    console,
    errors_as_exit,
    fail,
    load_target,
    make_provider,
    metrics_table,
    print_notes,
    progress_bar,
)
from qmtl.strategy import Strategy

MaybeTargetArg = Annotated[str | None, typer.Argument(
    help="Strategy file, FILE.py or FILE.py:Class (or give --alpha or --spec).",
    show_default=False)]
AlphaOpt = Annotated[str | None, typer.Option(
    help="An alpha expression instead of a strategy file, e.g. 'rank(-ts_delta(close, 5))'.",
    rich_help_panel="Alpha")]
SpecOpt = Annotated[Path | None, typer.Option(
    help="A strategy spec (JSON, from Strategy.to_spec) instead of a strategy file.",
    rich_help_panel="Alpha")]
IntervalOpt = Annotated[str | None, typer.Option(
    help="--alpha: bar interval (default 1d).", rich_help_panel="Alpha")]
NeutralizeOpt = Annotated[str | None, typer.Option(
    help="--alpha: market (default), group or none.", rich_help_panel="Alpha")]
GroupsOpt = Annotated[Path | None, typer.Option(
    help="--alpha: CSV symbol,level1[,level2...] with a header (group_neutralize and "
         "--neutralize group use the first level; indneutralize(x, IndClass.LEVEL) any).",
    rich_help_panel="Alpha")]


def load_any(
    target: str | None, param: list[str] | None, symbols: str | None, alpha: str | None,
    spec: Path | None, interval: str | None = None, neutralize: str | None = None,
    groups: Path | None = None,
) -> tuple[Strategy, list[str] | None]:
    """The strategy of exactly one of a strategy file, ``--alpha`` or ``--spec``, and the
    ``--symbols`` universe.

    >>> load_any(None, None, None, None, None)
    Traceback (most recent call last):
    ...
    qmtl.cli.common.UsageError: give a strategy file, --alpha EXPR or --spec FILE.json
    >>> load_any("s.py", None, None, "rank(close)", None)
    Traceback (most recent call last):
    ...
    qmtl.cli.common.UsageError: give only one of a strategy file, --alpha and --spec
    """
    from qmtl.runner import make_strategy

    given = [x for x in (target, alpha, spec) if x is not None]
    if not given:
        raise UsageError("give a strategy file, --alpha EXPR or --spec FILE.json")
    if len(given) > 1:
        raise UsageError("give only one of a strategy file, --alpha and --spec")
    if alpha is None:
        extra = [n for n, v in (("--interval", interval), ("--neutralize", neutralize),
                                ("--groups", groups)) if v is not None]
        if extra:
            raise UsageError(f"{', '.join(extra)} apply to --alpha only")
    if target is not None:
        cls, params, universe = load_target(target, param, symbols)
        return make_strategy(cls, params), universe
    if param:
        raise UsageError("-p/--param does not apply to --alpha or --spec: the graph holds "
                         "its parameters")
    universe = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
    if spec is not None:
        from qmtl.alpha.spec import from_spec

        return from_spec(spec), universe
    from qmtl.alpha.api import alpha as make_alpha
    from qmtl.alpha.groups import levels_from_csv

    if not universe:
        raise UsageError("--alpha needs --symbols A,B,...: an alpha trades across a universe")
    mode = {"market": "market", "group": "group", "none": None, None: "market"}
    if neutralize not in mode:
        raise UsageError(f"--neutralize must be market, group or none, got {neutralize!r}")
    group_map = None
    if groups is not None:
        try:
            group_map = levels_from_csv(groups)
        except ValueError as exc:
            raise UsageError(f"--groups: {exc}") from None
    return make_alpha(alpha, universe, interval or "1d", neutralize=mode[neutralize],
                      groups=group_map), universe


def _set_execution(strategy: Any, execution: str | None) -> None:
    """Apply ``--execution`` to the strategy (checked: an unknown rule is an error)."""
    if execution is not None:
        strategy.execution = execution
        strategy.execution_settings()


def _set_calendar(strategy: Any, calendar: str | None) -> None:
    """Apply ``--calendar`` to the strategy (checked: an unknown calendar is an error)."""
    if calendar is not None:
        from qmtl.runner import strategy_calendar

        strategy.calendar = calendar
        strategy_calendar(strategy)


def run(
    target: MaybeTargetArg = None,
    mode: Annotated[str, typer.Option(help="backtest (replay history) or live.")] = "backtest",
    symbols: SymbolsOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    param: ParamOpt = None,
    alpha: AlphaOpt = None,
    spec: SpecOpt = None,
    interval: IntervalOpt = None,
    neutralize: NeutralizeOpt = None,
    groups: GroupsOpt = None,
    cost_bps: CostOpt = None,
    batch_size: Annotated[int, typer.Option(help="Bars per replay batch.")] = 10_000,
    workers: Annotated[int, typer.Option(help="Bytewax workers.")] = 1,
    periods_per_year: Annotated[float | None, typer.Option(help="Annualization override.")] = None,
    calendar: Annotated[str | None, typer.Option(
        help="The symbols' trading calendar (XNYS, fx, crypto, weekdays, ...; as qmtl data "
        "check): periods per year from it, and a live hand-off does not count a closed "
        "market as missing bars; default: the strategy's.")] = None,
    on_bad_bars: Annotated[str, typer.Option(help="raise or drop.")] = "raise",
    execution: Annotated[str | None, typer.Option(
        help="When weights trade: close (the signal bar's close) or next_open (the next "
        "bar's open); default: the strategy's.")] = None,
    data: DataOpt = None,
    origin: OriginOpt = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default ./runs/...).")] = None,
    report: Annotated[bool, typer.Option(
        "--report", help="Backtest: also write the tear sheet, OUT/report.html.")] = False,
    debug: DebugOpt = False,
    # -- live -------------------------------------------------------------------------------
    brokers: Annotated[str | None, typer.Option(
        envvar="QMTL_BROKERS", help="Live: Kafka host:port (default: replay the catalog in "
        "process at --speed).", rich_help_panel="Live")] = None,
    topic: Annotated[str, typer.Option(help="Live: topic of bars.",
                                       rich_help_panel="Live")] = "bars",
    group: Annotated[str | None, typer.Option(help="Live: consumer group (default "
                     "qmtl-WORLD-STRATEGY).", rich_help_panel="Live")] = None,
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
        help="Live: bars of history to warm up on (default: the strategy's warmup, else "
        "the graph's look-back, as a backtest from --start).",
        rich_help_panel="Live")] = None,
    speed: Annotated[str, typer.Option(help="Live without --brokers: max, Nx or N/s.",
                                       rich_help_panel="Live")] = "10/s",
    max_activation_age: Annotated[float, typer.Option(
        help="Live: hold orders when the world has not confirmed the activation for this "
        "many seconds.", rich_help_panel="Live")] = 30.0,
    slippage_bps: Annotated[float | None, typer.Option(
        help="Live: slippage against the trade, bp (sets the strategy's spread_bps to twice "
        "it; default: the strategy's).", rich_help_panel="Live")] = None,
    fee_bps: Annotated[float | None, typer.Option(
        help="Live: fee, bp of notional (sets the strategy's cost_bps; default: the "
        "strategy's).", rich_help_panel="Live")] = None,
    orders_store: Annotated[str | None, typer.Option(
        help="Live: orders/fills/positions store, a file or postgresql:// URL.",
        rich_help_panel="Live")] = None,
    orders_topic: Annotated[str, typer.Option(help="Live: topic for OrderIntents.",
                                              rich_help_panel="Live")] = "orders",
    fills_topic: Annotated[str, typer.Option(help="Live: topic for fills.",
                                             rich_help_panel="Live")] = "fills",
    targets_topic: Annotated[str | None, typer.Option(
        help="Live: also publish the strategy's targets here, keyed by world, for the "
        "world's book (`qmtl world book-run`).", rich_help_panel="Live")] = None,
    metrics_every: Annotated[int, typer.Option(help="Live: bars between MetricsUpdates.",
                                               rich_help_panel="Live")] = 1,
    source: Annotated[str | None, typer.Option(
        help="Live: read bars from an exchange directly, ccxt:EXCHANGE (e.g. ccxt:binance; "
        "symbols BTC-USDT; with --feed trades its trades), or tail a QuestDB table, questdb://user:pass@host:8812/qdb"
        "?table=bars_{interval}, instead of a Kafka topic.", rich_help_panel="Live")] = None,
    sink: Annotated[str | None, typer.Option(
        help="Live: write the run's bars, returns and fills to QuestDB over ILP when it "
        "ends: a questdb client conf, e.g. 'tcp::addr=host:9009;'.",
        rich_help_panel="Live")] = None,
    feed: Annotated[str, typer.Option(
        help="Live: what the topic carries: bars (of the strategy's interval, or finer with "
        "--feed-interval) or trades (aggregated into bars in the flow by event time).",
        rich_help_panel="Live")] = "bars",
    feed_interval: Annotated[str | None, typer.Option(
        help="Live: the feed's bars are of this finer interval (e.g. 1m for a 1h strategy): "
        "resampled in the flow as the catalog resamples.", rich_help_panel="Live")] = None,
    lateness: Annotated[float, typer.Option(
        help="Live, --feed trades: seconds a trade may lag the latest one and still count in "
        "its bar (a bar closes when the latest trade is this far past its end).",
        rich_help_panel="Live")] = 0.0,
    late: Annotated[str, typer.Option(
        help="Live, --feed trades: a later trade is dropped or folded into the next open bar "
        "(counted and logged either way).", rich_help_panel="Live")] = "drop",
    empty: Annotated[str, typer.Option(
        help="Live, --feed trades: an interval without trades gives no bar (skip) or a bar "
        "at the previous close with volume 0 (carry).", rich_help_panel="Live")] = "skip",
    max_gap_bars: Annotated[int, typer.Option(
        help="Live: bars that may be missing between history and the first live bar.",
        rich_help_panel="Live")] = 0,
    policy: Annotated[str | None, typer.Option(
        help="Live without --url: policy file of the embedded world.",
        rich_help_panel="Live")] = None,
    strategy_id: Annotated[str | None, typer.Option("--id", help="Live: strategy id (default: "
                           "the class name and any changed parameters, as submit derives it).",
                           rich_help_panel="Live")] = None,
    metrics_port: Annotated[int | None, typer.Option(
        help="Live: serve the run's Prometheus metrics (bars, orders held or sent, lag) on "
        "this port (0: any free port).", rich_help_panel="Live")] = None,
    metrics_host: Annotated[str, typer.Option(
        help="Live: interface of --metrics-port.", rich_help_panel="Live")] = "127.0.0.1",
) -> None:
    """Run a strategy: replay history through it, or run the same graph live.

    The strategy is a file, an alpha expression (`--alpha`, see docs/alphas.md) or a spec
    (`--spec`). `--mode backtest` (the default) replays the catalog's bars through it, prints
    its metrics and writes `bars.parquet` and `metrics.json` (every setting of the run, with
    the data fingerprint) to `--out`; `--report` adds the tear sheet, `report.html`.
    `--mode live` runs the same graph (of a file, an alpha or a spec) on a Kafka feed (or
    the catalog replayed at `--speed`) and sends orders when the world activates it. Bars
    come from the catalog; what it lacks is fetched from QuestDB or the backfill origin, if
    configured. A mistake in the strategy's code is reported with its file and line;
    `--debug` shows the traceback.
    """
    # the engine loads when a command runs (see qmtl.cli): `qmtl --help` starts in a second
    from qmtl.cli.live import run_live_command
    from qmtl.live import LiveOptions
    from qmtl.runner import backtest

    if mode not in ("backtest", "live"):
        raise fail(f"--mode must be 'backtest' or 'live', got {mode!r}")
    if mode == "live" and report:
        raise fail("--report is for backtests: run `qmtl report RUN_DIR` on a live run's --out")
    if mode == "live":
        options = LiveOptions(
            brokers=brokers, topic=topic, group=group, world=world, url=url, token=token,
            paper=paper, data=data, start=start, end=end, cost_bps=cost_bps,
            strategy_id=strategy_id, warmup=warmup, speed=speed, max_bars=max_bars,
            stop_after_idle=stop_after_idle, recovery_dir=recovery_dir,
            snapshot_interval=snapshot_interval, out=out, orders_store=orders_store,
            orders_topic=orders_topic, fills_topic=fills_topic, targets_topic=targets_topic,
            max_activation_age=max_activation_age, slippage_bps=slippage_bps, fee_bps=fee_bps,
            metrics_every=metrics_every, max_gap_bars=max_gap_bars, workers=workers,
            periods_per_year=periods_per_year, policy=policy, origin=origin,
            metrics_port=metrics_port, metrics_host=metrics_host, source=source, sink=sink,
            feed=feed,
            feed_interval=feed_interval, lateness=lateness, late=late, empty=empty,
        )
        with errors_as_exit(debug):
            strategy, universe = load_any(target, param, symbols, alpha, spec, interval,
                                          neutralize, groups)
            options.symbols = universe
            _set_execution(strategy, execution)
            _set_calendar(strategy, calendar)
            run_live_command(strategy, options, debug)
        return
    if on_bad_bars not in ("raise", "drop"):
        raise fail(f"--on-bad-bars must be 'raise' or 'drop', got {on_bad_bars!r}")
    with errors_as_exit(debug):
        strategy, universe = load_any(target, param, symbols, alpha, spec, interval,
                                      neutralize, groups)
        _set_execution(strategy, execution)
        _set_calendar(strategy, calendar)
        with progress_bar() as progress:
            provider = make_provider(data, origin, None, progress)
            task = progress.add_task("replay", total=None)
            result = backtest(
                strategy,
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
            )
        print_notes(provider)
        folder = out or Path("runs") / (
            f"{result.strategy}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}"
        )
        result.write(folder)
    title = f"{result.strategy} · {', '.join(result.symbols)} · {result.interval}"
    console.print(metrics_table(title, result.metrics))
    console.print(f"wrote {folder}/bars.parquet and {folder}/metrics.json "
                  f"(data fingerprint {str(result.data['fingerprint'])[:12]})", highlight=False)
    if report:
        with errors_as_exit(debug):
            from qmtl.report import load_run, write_report  # plotly loads only for --report

            path = write_report(load_run(folder), folder / "report.html")
        console.print(f"wrote {path}", highlight=False, soft_wrap=True)
