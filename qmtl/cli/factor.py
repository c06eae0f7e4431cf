"""``qmtl factor``: the factor analysis of an alpha, a strategy, a spec or a file of many
alphas (one per line) in one flow; writes ``factor.html`` and ``factor.json``.

>>> from typer.testing import CliRunner
>>> from qmtl.cli import app
>>> CliRunner().invoke(app, ["factor", "--help"]).exit_code
0
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from qmtl.cli.common import (
    DataOpt,
    DebugOpt,
    EndOpt,
    StartOpt,
    SymbolsOpt,
    UsageError,
    console,
    errors_as_exit,
    make_provider,
)
from qmtl.cli.run import GroupsOpt, IntervalOpt, SpecOpt


def read_targets(target: str | None, spec: Path | None, symbols: str | None
                 ) -> tuple[list[Any], list[str] | None]:
    """The alphas of the command line: alpha text, ``FILE.py[:Class]`` (a strategy),
    ``FILE.txt`` (one alpha per line; ``#`` comments) or ``--spec``.

    >>> read_targets(None, None, None)
    Traceback (most recent call last):
    ...
    qmtl.cli.common.UsageError: give an alpha (text), FILE.py, FILE.txt of alphas or --spec
    """
    universe = [s.strip() for s in symbols.split(",") if s.strip()] if symbols else None
    if (target is None) == (spec is None):
        raise UsageError("give an alpha (text), FILE.py, FILE.txt of alphas or --spec"
                         if target is None else "give one of an alpha and --spec")
    if spec is not None:
        from qmtl.alpha.spec import from_spec

        return [from_spec(spec)], universe
    assert target is not None
    path = target.split(":", 1)[0]
    if path.endswith(".py"):
        from qmtl.cli.common import load_target
        from qmtl.runner import make_strategy

        cls, params, given = load_target(target, None, symbols)
        return [make_strategy(cls, params)], given or universe
    if target.endswith(".txt") or (Path(target).is_file() and "(" not in target):
        lines = [ln.strip() for ln in Path(target).read_text().splitlines()]
        texts = [ln for ln in lines if ln and not ln.startswith("#")]
        if not texts:
            raise UsageError(f"{target}: no alphas (one per line)")
        return texts, universe
    return [target], universe


def factor(
    target: Annotated[str | None, typer.Argument(
        help="An alpha (text), FILE.py[:Class], or FILE.txt with one alpha per line.",
        show_default=False)] = None,
    spec: SpecOpt = None,
    symbols: SymbolsOpt = None,
    interval: IntervalOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    horizons: Annotated[str, typer.Option(help="Forward-return horizons in bars.")] = "1,5,10",
    quantiles: Annotated[int, typer.Option(help="Quantiles of the factor per bar.")] = 5,
    groups: GroupsOpt = None,
    out: Annotated[Path, typer.Option(help="Folder for factor.html and factor.json.")] = Path(
        "runs/factor"),
    data: DataOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Factor analysis: IC and rank IC per horizon (mean, ICIR, t-stat), IC decay, quantile
    returns, the top-minus-bottom spread, turnover, rank autocorrelation, IC by group and
    month; the numbers equal alphalens' where both define them (docs/alphas.md).

    Many alphas (a FILE.txt) are evaluated in one flow: shared nodes once.
    """
    from qmtl.alpha.groups import levels_from_csv
    from qmtl.factor.api import factors
    from qmtl.factor.page import write_page
    from qmtl.sweep.plan import ns

    with errors_as_exit(debug):
        items, universe = read_targets(target, spec, symbols)
        try:
            hs = [int(h) for h in horizons.split(",") if h.strip()]
        except ValueError:
            raise UsageError(f"--horizons: whole numbers, e.g. 1,5,10; got {horizons!r}"
                             ) from None
        try:
            levels = levels_from_csv(groups) if groups is not None else None
        except (OSError, ValueError) as exc:
            raise UsageError(f"--groups: {exc}") from None
        try:
            reports, dedup = factors(items, make_provider(data), symbols=universe,
                                     interval=interval or getattr(items[0], "interval", "1d"),
                                     horizons=hs, quantiles=quantiles, groups=levels,
                                     start=ns(start, "start"), end=ns(end, "end"))
        except ValueError as exc:
            if type(exc) is ValueError:
                raise UsageError(str(exc)) from None
            raise
        path = write_page(reports, out, dedup)
    first = min(hs)
    for rep in reports[:10]:
        s = rep.stats.horizons[first].rank_ic_summary
        console.print(f"{rep.name}: rank IC {s.mean:+.4f} · ICIR {s.icir:+.3f} · t {s.t_stat:+.2f}"
                      f" ({first}-bar horizon, {s.n} bars)", highlight=False)
    if len(reports) > 10:
        console.print(f"... and {len(reports) - 10} more", highlight=False)
    console.print(f"{len(reports)} alpha(s) in one flow · dedup {dedup:.1f}x · wrote {path} "
                  "and factor.json", highlight=False)
