"""``qmtl submit``: backtest a strategy, stream its metrics to a world, print the decision.

>>> from typer.testing import CliRunner
>>> from qmtl.cli import app
>>> CliRunner().invoke(app, ["submit", "--help"]).exit_code
0
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from qmtl.cli.common import (
    CostOpt,
    DataOpt,
    DebugOpt,
    EndOpt,
    OriginOpt,
    ParamOpt,
    StartOpt,
    SymbolsOpt,
    console,
    errors_as_exit,
    format_metric,
    make_provider,
    metrics_table,
    print_notes,
    progress_bar,
)
from qmtl.cli.run import (
    AlphaOpt,
    GroupsOpt,
    IntervalOpt,
    MaybeTargetArg,
    NeutralizeOpt,
    SpecOpt,
    load_any,
)
from qmtl.core.contracts import SubmitResult


def submit(
    target: MaybeTargetArg = None,
    world: Annotated[str | None, typer.Option(help=(
        "World id (default: $QMTL_WORLD, else world = \"W\" in ~/.qmtl/config.toml or "
        "$QMTL_CONFIG)."))] = None,
    url: Annotated[str, typer.Option(envvar="QMTL_WORLD_URL", help="WorldService URL.")] = (
        "http://127.0.0.1:8600"
    ),
    token: Annotated[str | None, typer.Option(envvar="QMTL_TOKEN", help="Bearer token.")] = None,
    strategy_id: Annotated[str | None, typer.Option("--id", help=(
        "Strategy id (default: the class name, with the parameters -p changed from their "
        "defaults, e.g. SmaCross-fast=20)."))] = None,
    dry_run: Annotated[bool, typer.Option(help="Apply the world's policy locally only.")] = False,
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
    data: DataOpt = None,
    origin: OriginOpt = None,
    pysr: Annotated[Path | None, typer.Option(
        help="A PySR hall of fame (CSV: Complexity, Loss, Equation): submit its best "
             "equations as alphas (--variables, --top, --symbols).",
        rich_help_panel="Alpha")] = None,
    variables: Annotated[str | None, typer.Option(
        help="--pysr: the equations' variables as fields or alpha text, "
             "x0=close,x1=returns.", rich_help_panel="Alpha")] = None,
    top: Annotated[int, typer.Option(help="--pysr: how many equations (lowest loss first).",
                                     rich_help_panel="Alpha")] = 1,
    timeout: Annotated[float, typer.Option(min=0.0, help=(
        "A world that evaluates itself (policy evaluation: world): seconds to wait for its "
        "answer before printing 'still evaluating'."))] = 120.0,
    debug: DebugOpt = False,
) -> None:
    """Backtest a strategy, stream its metrics to a world, print the world's decision.

    The strategy is a file, an alpha expression (`--alpha`) or a spec (`--spec`); an alpha's
    default id is `alpha-` and 10 hex digits of its graph's content id.

    The strategy is entered under `--id`; by default its class name when every parameter has
    its default, else the class name with the changed parameters (`SmaCross-fast=20,slow=100`,
    or a short hash of them when they are long or have other characters than letters,
    digits and `_.+-`), so submitting other parameters adds an entry rather than replacing
    one. `--dry-run` applies the world's policy locally and sends nothing. A world whose
    policy says `evaluation: world` gets the strategy's artifact only: its evaluator
    backtests it on the world's market, and submit waits `--timeout` seconds for the answer.
    """
    # the engine loads when a command runs (see qmtl.cli): `qmtl --help` starts in a second
    from qmtl.cli.world_config import default_world

    world = default_world(world)
    if pysr is not None:
        with errors_as_exit(debug):
            strategies, universe = load_pysr(pysr, variables, top, symbols, target, alpha,
                                             spec, interval, neutralize, groups, strategy_id)
        for strategy in strategies:
            console.print(f"[bold]{strategy.name}[/]: {strategy.alpha}")
            submit_one(strategy, universe, world, url, token, None, dry_run, start, end,
                       cost_bps, data, origin, debug, timeout)
        return
    with errors_as_exit(debug):
        strategy, universe = load_any(target, param, symbols, alpha, spec, interval,
                                      neutralize, groups)
    submit_one(strategy, universe, world, url, token, strategy_id, dry_run, start, end,
               cost_bps, data, origin, debug, timeout)


def load_pysr(path: Path, variables: str | None, top: int, symbols: str | None,
              *others: object) -> tuple[list[Any], list[str]]:
    """The alphas of ``--pysr``, checking the options that go with it.

    >>> load_pysr(Path("h.csv"), None, 1, "A", None, None, None, None, None, None, None)
    Traceback (most recent call last):
    ...
    qmtl.cli.common.UsageError: --pysr needs --variables x0=FIELD,x1=...
    """
    from qmtl.alpha.api import from_pysr
    from qmtl.alpha.groups import levels_from_csv
    from qmtl.cli.common import UsageError

    target, alpha, spec, interval, neutralize, groups, strategy_id = others
    if target is not None or alpha is not None or spec is not None or strategy_id:
        raise UsageError("--pysr submits its equations: give no strategy file, --alpha, "
                         "--spec or --id with it")
    if not variables:
        raise UsageError("--pysr needs --variables x0=FIELD,x1=...")
    mapping = {}
    for part in variables.split(","):
        name, eq, value = part.partition("=")
        if not eq or not name.strip() or not value.strip():
            raise UsageError(f"--variables: expected NAME=FIELD, got {part!r}")
        mapping[name.strip()] = value.strip()
    universe = [s.strip() for s in (symbols or "").split(",") if s.strip()]
    if not universe:
        raise UsageError("--pysr needs --symbols A,B,...: an alpha trades across a universe")
    if top < 1:
        raise UsageError(f"--top must be >= 1, got {top}")
    mode = {"market": "market", "group": "group", "none": None, None: "market"}
    if neutralize not in mode:
        raise UsageError(f"--neutralize must be market, group or none, got {neutralize!r}")
    try:
        levels = levels_from_csv(groups) if groups is not None else None  # type: ignore[arg-type]
        return from_pysr(str(path), mapping, universe, str(interval or "1d"), top=top,
                         neutralize=mode[neutralize], groups=levels), universe  # type: ignore[index]
    except (OSError, ValueError) as exc:
        raise UsageError(f"--pysr: {exc}") from None


def submit_one(strategy: Any, universe: list[str] | None, world: str, url: str,
               token: str | None, strategy_id: str | None, dry_run: bool, start: str | None,
               end: str | None, cost_bps: float | None, data: Any, origin: Any,
               debug: bool, timeout: float = 120.0) -> None:
    """Backtest one strategy, submit it and print the decision (the body of ``submit``)."""
    from qmtl.submit import submit as do_submit

    with errors_as_exit(debug):
        with progress_bar() as progress:
            provider = make_provider(data, origin, None, progress)
            task = progress.add_task("replay", total=None)
            result = do_submit(
                strategy,
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
                wait=timeout,
            )
        print_notes(provider)
    print_submit_result(result)
    from qmtl.submit import DATA_FAILED

    if result.status == "rejected" and any(h.startswith(DATA_FAILED)
                                           for h in result.improvement_hints):
        raise typer.Exit(1)  # the run itself failed, not the world's policy


def print_submit_result(result: SubmitResult) -> None:
    """Print a SubmitResult: decision, hints, metrics.

    >>> print_submit_result(SubmitResult(world="w", strategy_id="S", run_id="r",
    ...     status="rejected", metrics={}, contribution=0.0, weight=0.0, rank=None,
    ...     improvement_hints=["extend --start"], n_bars=3, dry_run=False))
    rejected · S in world w
    weight 0.000 · rank - · contribution 0.0% · 3 bars
      hint: extend --start
    ...
    """
    colour = {"active": "green", "candidate": "yellow", "rejected": "red"}[result.status]
    head = f"[bold {colour}]{result.status}[/] · {result.strategy_id} in world {result.world}"
    if result.dry_run:
        head += " (dry run: the world's policy applied locally; nothing was sent)"
    if result.evaluating:
        head += " (still evaluating: the world's answer so far)"
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
    if result.world_metrics:
        console.print(world_change_table(result.world_metrics))


def world_change_table(world_metrics: dict[str, dict[str, float]]) -> Table:
    """The world's pro forma metrics before and after the strategy joined, and the change.

    >>> t = world_change_table({"before": {"sharpe": 1.0}, "after": {"sharpe": 1.2},
    ...                         "change": {"sharpe": 0.2}})
    >>> t.row_count, [c.header for c in t.columns]
    (1, ['world (pro forma)', 'before', 'after', 'change'])
    """
    table = Table(show_header=True, header_style="bold")
    for name in ("world (pro forma)", "before", "after", "change"):
        table.add_column(name, justify="left" if name.startswith("world") else "right")
    before, after = world_metrics.get("before", {}), world_metrics.get("after", {})
    change = world_metrics.get("change", {})
    for name in dict.fromkeys([*before, *after]):
        delta = change.get(name, float("nan"))
        sign = "+" if math.isfinite(delta) and delta > 0 else ""
        table.add_row(name, format_metric(name, before.get(name, float("nan"))),
                      format_metric(name, after.get(name, float("nan"))),
                      sign + format_metric(name, delta))
    return table
