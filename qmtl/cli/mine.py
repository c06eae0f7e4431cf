"""``qmtl mine``: search alphas by genetic programming, each generation in one flow; print
the best, write them as an alpha file, optionally submit the top ones to a world (skipping
any that correlate with the world's active strategies).

>>> from typer.testing import CliRunner
>>> from qmtl.cli import app
>>> CliRunner().invoke(app, ["mine", "--help"]).exit_code
0
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import numpy as np
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
from qmtl.cli.submit import print_submit_result


def active_returns(world: str, url: str, token: str | None) -> dict[str, tuple[Any, Any]]:
    """The return series ``(ts, returns)`` of the world's active strategies."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    table = httpx.get(f"{url}/worlds/{world}/activation", headers=headers, timeout=30)
    if table.status_code != 200:
        raise UsageError(f"world {world!r}: GET activation answered {table.status_code}: "
                         f"{table.text[:200]}")
    out = {}
    for row in table.json()["strategies"]:
        if not row.get("active"):
            continue
        sid = row["strategy_id"]
        got = httpx.get(f"{url}/worlds/{world}/strategies/{sid}/returns", headers=headers,
                        timeout=30)
        if got.status_code == 200:
            pts = got.json()["points"]
            out[sid] = (np.array([p["ts"] for p in pts], dtype=np.int64),
                        np.array([p["return"] for p in pts], dtype=np.float64))
    return out


def mine(
    symbols: SymbolsOpt = None,
    interval: Annotated[str, typer.Option(help="Bar interval.")] = "1d",
    population: Annotated[int, typer.Option(help="Alphas per generation.")] = 50,
    generations: Annotated[int, typer.Option(help="Generations.")] = 5,
    seed: Annotated[int, typer.Option(help="Random seed: the same seed, the same search.")] = 0,
    max_depth: Annotated[int, typer.Option(help="Deepest tree (levels of operators).")] = 3,
    train: Annotated[float, typer.Option(help="Share of bars for fitness; the rest is the "
                                               "held-out test window.")] = 0.7,
    max_corr: Annotated[float, typer.Option(help="Skip alphas whose training returns "
                                                 "correlate above this with an active "
                                                 "strategy of --world or a better pick.")] = 0.7,
    top: Annotated[int, typer.Option(help="Best alphas to print and write.")] = 10,
    submit_top: Annotated[int, typer.Option(help="Submit the K best to --world.")] = 0,
    world: Annotated[str | None, typer.Option(help="World: its active strategies are the "
                                                   "correlation filter; --submit-top's.")] = None,
    url: Annotated[str, typer.Option(envvar="QMTL_WORLD_URL", help="WorldService URL.")] = (
        "http://127.0.0.1:8600"),
    token: Annotated[str | None, typer.Option(envvar="QMTL_TOKEN", help="Bearer token.")] = None,
    start: StartOpt = None,
    end: EndOpt = None,
    out: Annotated[Path, typer.Option(help="Folder for mine.json and alphas.txt.")] = Path(
        "runs/mine"),
    data: DataOpt = None,
    debug: DebugOpt = False,
) -> None:
    """Search alphas by genetic programming on the alpha language's trees.

    Each generation is backtested in one flow (equal alphas once across the search, shared
    nodes once); fitness is the Sharpe on the first `--train` share of bars, the rest is
    reported as the test Sharpe; the deflated Sharpe of the best counts every candidate.
    """
    from qmtl.alpha.mine import mine as run_mine
    from qmtl.submit import submit as do_submit
    from qmtl.sweep.plan import ns

    with errors_as_exit(debug):
        universe = [s.strip() for s in (symbols or "").split(",") if s.strip()]
        if not universe:
            raise UsageError("qmtl mine needs --symbols A,B,...: an alpha trades a universe")
        if submit_top and not world:
            raise UsageError("--submit-top needs --world")
        provider = make_provider(data)
        active = active_returns(world, url, token) if world else None
        s, e = ns(start, "start"), ns(end, "end")
        source: Any = provider
        if s is not None or e is not None:  # slice the bars the search reads
            source = {sym: _read(provider, sym, interval, s, e) for sym in universe}
        try:
            res = run_mine(source, universe, interval, population=population,
                           generations=generations, seed=seed, max_depth=max_depth,
                           train=train, active=active)
        except ValueError as exc:
            if type(exc) is ValueError:
                raise UsageError(str(exc)) from None
            raise
    best = res.best(max(top, submit_top), max_corr)
    for g, gen in enumerate(res.generations):
        console.print(f"generation {g}: {gen.candidates} alphas, {gen.distinct} distinct, "
                      f"{gen.new} new · nodes {gen.nodes} of {gen.nodes_alone} alone · "
                      f"best train Sharpe {gen.best_train_sharpe:.3f}", highlight=False)
    distinct = len(res.candidates)
    console.print(f"{res.tried} candidates, {distinct} distinct (content-id dedup "
                  f"{res.tried / max(distinct, 1):.2f}x) · deflated Sharpe of the best over "
                  f"all {distinct}: {res.deflated:.3f}", highlight=False)
    for c in best[:top]:
        console.print(f"  {c.train_sharpe:+.3f} train · {c.test_sharpe:+.3f} test · {c.text}",
                      highlight=False)
    out.mkdir(parents=True, exist_ok=True)
    (out / "alphas.txt").write_text("".join(f"{c.text}\n" for c in best[:top]))

    def num(x: float) -> float | None:
        return float(x) if math.isfinite(x) else None

    (out / "mine.json").write_text(json.dumps({
        "seed": seed, "tried": res.tried, "distinct": distinct, "deflated_sharpe":
        num(res.deflated), "train_end": res.train_end,
        "generations": [{**g.__dict__, "dedup": num(g.dedup)} for g in res.generations],
        "best": [{"alpha": c.text, "name": c.name, "generation": c.generation,
                  "train_sharpe": num(c.train_sharpe), "test_sharpe": num(c.test_sharpe),
                  "max_corr_active": num(c.max_corr)} for c in best[:top]],
    }, indent=1))
    console.print(f"wrote {out / 'alphas.txt'} and mine.json", highlight=False)
    if submit_top:
        from qmtl.alpha.api import alpha as make_alpha

        for c in best[:submit_top]:
            with errors_as_exit(debug):
                sub = do_submit(make_alpha(c.text, universe, interval), world or "", url,
                                token, data=provider, symbols=universe, start=start, end=end)
            console.print(f"submitted {c.name}: {c.text}", highlight=False)
            print_submit_result(sub)


def _read(provider: Any, symbol: str, interval: str, start: int | None, end: int | None
          ) -> Any:
    from qmtl.sources import resolve_source

    make, _ = resolve_source(provider, [symbol], interval, start, end, 10**9)
    parts = [b for _, b in make()]
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
