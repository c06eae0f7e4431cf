"""``qmtl sweep``: run a grid of a strategy's parameters (or several strategies) in one
Bytewax flow, rank the variants, and say how much of the best is luck.

>>> from typer.testing import CliRunner
>>> from qmtl.cli import app
>>> CliRunner().invoke(app, ["sweep", "--help"]).exit_code
0
"""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from qmtl.cli.common import (
    CostOpt,
    DataOpt,
    DebugOpt,
    EndOpt,
    OriginOpt,
    StartOpt,
    SymbolsOpt,
    UsageError,
    console,
    err_console,
    errors_as_exit,
    fail,
    format_metric,
    make_provider,
    print_notes,
    progress_bar,
)
from qmtl.cli.submit import print_submit_result
from qmtl.loader import load_strategy
from qmtl.strategy import Strategy

if TYPE_CHECKING:
    from qmtl.sweep.result import SweepResult

GridOpt = Annotated[list[str] | None, typer.Option(
    "-p", "--param", help="Parameter values name=start:stop:step (stop included when on "
    "the step), name=a,b,c or name=value; repeat for each parameter.")]


def load_targets(targets: list[str]) -> list[type[Strategy]]:
    """The strategy classes of ``targets``: files (``FILE.py`` or ``FILE.py:Class``) and
    folders (every ``*.py`` file in them, sorted).

    >>> load_targets(["/nowhere.py"])
    Traceback (most recent call last):
    ...
    qmtl.loader.LoadError: strategy file not found: /nowhere.py
    """
    classes: list[type[Strategy]] = []
    for target in targets:
        path = Path(target)
        if path.is_dir():
            files = sorted(p for p in path.glob("*.py") if not p.name.startswith("_"))
            if not files:
                raise UsageError(f"no strategy files (*.py) in folder {path}")
            classes += [load_strategy(str(f)) for f in files]
        else:
            classes.append(load_strategy(target))
    return classes


def grid_of(param: list[str]) -> dict[str, str]:
    """``["fast=5:50:5", "slow=20,50"]`` -> the grid (values stay text).

    >>> grid_of(["fast=5:50:5"])
    {'fast': '5:50:5'}
    >>> grid_of(["fast=1", "fast=2"])
    Traceback (most recent call last):
    ...
    qmtl.cli.common.UsageError: -p fast given twice: give its values once (a,b or a:b:step)
    """
    grid: dict[str, str] = {}
    for item in param:
        name, sep, values = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise UsageError(f"-p expects name=values, got {item!r}")
        if name in grid:
            raise UsageError(f"-p {name} given twice: give its values once (a,b or a:b:step)")
        grid[name] = values
    return grid


def top_table(result: SweepResult, top: int) -> Table:
    """The ``top`` best variants: rank, parameters, the ranked metric (and its test-period
    value with a training cut) and a few others."""
    from qmtl.sweep.heatmap import lower_is_better

    best = result.best(top)
    names: list[str] = []
    for p in result.params:
        names += [n for n in p if n not in names]
    shown = [result.rank_by]
    if result.train_end is not None:
        shown.append(f"test_{result.metric}")
    shown += [m for m in ("sharpe", "total_return", "max_drawdown", "n_bars")
              if m not in shown and m in best.column_names]
    arrow = "↓" if lower_is_better(result.metric) else "↑"
    table = Table(title=f"best {best.num_rows} of {len(result.runs)} by {result.rank_by} {arrow}",
                  header_style="bold")
    for col in ("#", "variant", *(["strategy"] if len(set(result.strategies)) > 1 else []),
                *names):
        table.add_column(col)
    for col in shown:
        table.add_column(col, justify="right")
    rows = best.to_pylist()
    for i, row in enumerate(rows, 1):
        cells = [str(i), row["variant"]]
        if len(set(result.strategies)) > 1:
            cells.append(row["strategy"])
        cells += ["" if row.get(n) is None else str(row[n]) for n in names]
        cells += [format_metric(c.removeprefix("train_").removeprefix("test_"),
                                float(row[c])) for c in shown]
        table.add_row(*cells)
    return table


def chosen_params(result: SweepResult, key: str) -> str:
    """A walk-forward fold's choice as its parameters (``fast=10, slow=50``), not its key.

    >>> import numpy as np
    >>> from dataflows.sweep_flow import SweepStats, VariantRun
    >>> from qmtl.sweep.result import SweepResult
    >>> runs = [VariantRun("v0", np.arange(2), np.zeros(2), np.ones(2), {"sharpe": 0.0})]
    >>> chosen_params(SweepResult(["S"], [{"n": 3}], runs, "sharpe", SweepStats()), "v0")
    'n=3'
    """
    from qmtl.report.reading import params_text  # pure, no plotly

    return params_text(result, key)


def print_analysis(result: SweepResult) -> None:
    """The dedup line and the overfitting statistics under the table."""
    s = result.stats
    console.print(f"{len(result.runs)} variants in {result.seconds:.2f}s · nodes evaluated "
                  f"{s.nodes_evaluated} of {s.nodes_per_variant} run alone "
                  f"(dedup {s.dedup:.1f}x) · {len(s.shards)} worker(s)", highlight=False)
    d = result.deflated
    if d is not None:
        verdict = "at or above 0.95" if d.dsr >= 0.95 else "not significant at 5%"
        console.print(f"deflated Sharpe of the best: {d.dsr:.3f} ({verdict}; per-bar Sharpe "
                      f"{d.sharpe:.4f} vs {d.expected_max:.4f} expected from the best of "
                      f"{d.n_trials} trials by luck)", highlight=False)
    if result.pbo is not None:
        console.print(f"probability of backtest overfitting (CSCV, {result.pbo.n_splits} "
                      f"splits): {result.pbo.pbo:.2f}", highlight=False)
    if d is not None or result.pbo is not None:
        from qmtl.report.reading import reading  # DSR and PBO read together

        console.print(f"reading: {reading(d, result.pbo).verdict}", highlight=False)
    wf = result.walk_forward
    if wf is not None:
        from qmtl.core.times import format_ts

        table = Table(title=f"walk-forward ({len(wf.folds)} folds, anchored)",
                      header_style="bold")
        for col in ("fold", "test from", "to", "chosen", f"train {result.metric}",
                    f"test {result.metric}"):
            table.add_column(col)
        for f in wf.folds:
            table.add_row(str(f.fold), format_ts(f.test_start)[:10], format_ts(f.test_end)[:10],
                          chosen_params(result, f.chosen),
                          format_metric(result.metric, f.train_value),
                          format_metric(result.metric, f.test_value))
        console.print(table)
        value = wf.metrics.get(result.metric, math.nan)
        console.print(f"stitched out-of-sample {result.metric}: "
                      f"{format_metric(result.metric, value)} over {len(wf.returns)} bars",
                      highlight=False)


def sweep(
    targets: Annotated[list[str], typer.Argument(
        help="Strategy file (FILE.py or FILE.py:Class); without -p, several files or "
        "folders of them, run together.")],
    param: GridOpt = None,
    where: Annotated[str | None, typer.Option(
        help="Keep variants where this holds, e.g. 'fast < slow' (names, numbers, "
        "comparisons, and/or/not, + - * / // % **).")] = None,
    random: Annotated[int | None, typer.Option(help="Run N variants drawn from the grid.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of --random.")] = 0,
    symbols: SymbolsOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    cost_bps: CostOpt = None,
    metric: Annotated[str, typer.Option(help="Metric to rank on.")] = "sharpe",
    top: Annotated[int, typer.Option(help="Variants shown.")] = 10,
    train_end: Annotated[str | None, typer.Option(
        help="Rank on bars up to this time; show the test period's metrics beside.")] = None,
    walk_forward: Annotated[int | None, typer.Option(
        help="N anchored folds: re-select on each, report the stitched out-of-sample "
        "result.")] = None,
    pbo: Annotated[bool, typer.Option(
        help="Probability of backtest overfitting (CSCV).")] = False,
    pbo_splits: Annotated[int, typer.Option(help="CSCV blocks (even).")] = 16,
    workers: Annotated[int, typer.Option(help="Bytewax workers (threads) per process.")] = 1,
    processes: Annotated[int, typer.Option(
        help="Bytewax processes on this host (a cluster on 127.0.0.1).")] = 1,
    addresses: Annotated[str | None, typer.Option(
        "-a", "--addresses", help="Several hosts: host:port of every process, comma-separated "
        "(run the same command on each, with its --process-id).")] = None,
    process_id: Annotated[int, typer.Option(
        "-i", "--process-id", help="This process's index in --addresses.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Bars per replay batch.")] = 10_000,
    periods_per_year: Annotated[float | None, typer.Option(help="Annualization override.")] = None,
    on_bad_bars: Annotated[str, typer.Option(help="raise or drop.")] = "raise",
    data: DataOpt = None,
    origin: OriginOpt = None,
    out: Annotated[Path | None, typer.Option(
        help="Output folder (default ./runs/sweep-...).")] = None,
    submit_top: Annotated[int, typer.Option(
        help="Submit the K best variants to --world (which applies its own gates).")] = 0,
    world: Annotated[str | None, typer.Option(help="World id for --submit-top.")] = None,
    url: Annotated[str, typer.Option(envvar="QMTL_WORLD_URL", help="WorldService URL.")] = (
        "http://127.0.0.1:8600"
    ),
    token: Annotated[str | None, typer.Option(envvar="QMTL_TOKEN", help="Bearer token.")] = None,
    debug: DebugOpt = False,
) -> None:
    """Run many variants of a strategy in one flow and rank them.

    Every variant of the `-p` grid (filtered by `--where`, or `--random` N of it) runs in one
    Bytewax flow: the bars are read once per worker, nodes the variants share are computed
    once, and each variant gets its own portfolio and metrics. Writes `results.parquet`,
    `results.csv`, `summary.json` and `heatmap.html` to `--out` and prints the best
    variants, the deflated Sharpe ratio of the best, and on request its walk-forward and
    PBO. Without `-p`, the strategies of several files or folders run together.
    """
    # the engine loads when a command runs (see qmtl.cli): `qmtl --help` starts in a second
    from qmtl.sweep.run import sweep as run_sweep
    from qmtl.sweep.run import sweep_many

    if on_bad_bars not in ("raise", "drop"):
        raise fail(f"--on-bad-bars must be 'raise' or 'drop', got {on_bad_bars!r}")
    if submit_top and not world:
        raise fail("--submit-top needs --world")
    if top < 1:
        raise fail(f"--top must be >= 1, got {top}")
    with errors_as_exit(debug):
        classes = load_targets(targets)
        grid = grid_of(param or [])
        if grid and len(classes) > 1:
            raise UsageError("-p sweeps one strategy: give one file (or FILE.py:Class)")
        if not grid and (where or random):
            raise UsageError("--where and --random filter a -p grid: give -p name=values")
        universe = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
        cluster = [a.strip() for a in addresses.split(",") if a.strip()] if addresses else None
        with progress_bar() as progress:
            provider = make_provider(data, origin, None, progress)
            task = progress.add_task("bars × variants", total=None)
            options: dict[str, Any] = dict(
                symbols=universe, start=start, end=end, cost_bps=cost_bps, metric=metric,
                batch_size=batch_size, workers=workers, processes=processes,
                addresses=cluster, process_id=process_id, train_end=train_end,
                walk_forward=walk_forward, pbo=pbo, pbo_splits=pbo_splits,
                periods_per_year=periods_per_year, on_bad_bars=on_bad_bars,
                progress=lambda n: progress.advance(task, n),
                on_start=lambda total: progress.update(task, total=total or None),
            )
            if grid:
                result = run_sweep(classes[0], grid, provider, where=where, random=random,
                                   seed=seed, **options)
            else:
                result = sweep_many(classes, provider, **options)
        print_notes(provider)
        if result is None:
            console.print(f"process {process_id} done: another process of the cluster "
                          "gathered the results and writes them", highlight=False)
            return
        name = "+".join(dict.fromkeys(result.strategies))
        folder = out or Path("runs") / (
            f"sweep-{name[:40]}-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}")
        result.write(folder)
    console.print(top_table(result, top))
    print_analysis(result)
    console.print(f"wrote {folder}/results.parquet, results.csv, summary.json"
                  + (", heatmap.html" if (folder / "heatmap.html").exists() else ""),
                  highlight=False)
    if submit_top:
        submit_best(result, classes, submit_top, world or "", url, token, provider, universe,
                    start, end, cost_bps, debug)


def submit_best(result: SweepResult, classes: list[type[Strategy]], k: int, world: str,
                url: str, token: str | None, provider: Any, universe: list[str] | None,
                start: str | None, end: str | None, cost_bps: float | None,
                debug: bool) -> None:
    """Submit the ``k`` best variants to ``world`` (each backtested again by ``submit``, so
    the world sees the data fingerprint of its own run)."""
    from qmtl.runner import make_strategy
    from qmtl.submit import submit as do_submit

    by_name = {c.__name__: c for c in classes}
    for row in result.best(k).to_pylist():
        i = int(row["variant"][1:])
        cls = by_name[result.strategies[i]]
        with errors_as_exit(debug):
            sub = do_submit(make_strategy(cls, result.params[i]), world, url, token,
                            data=provider, symbols=universe, start=start, end=end,
                            cost_bps=cost_bps)
        err_console.print(f"submitted {row['variant']} ({result.params[i]})", highlight=False)
        print_submit_result(sub)
