"""``qmtl world evaluate W``: the world's evaluator (see :mod:`qmtl.world_evaluate` and
docs/world.md, "World-side evaluation").

>>> from typer.testing import CliRunner
>>> from qmtl.cli.world import world_app
>>> "Backtest every artifact" in CliRunner().invoke(world_app, ["evaluate", "--help"]).output
True
"""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from qmtl.cli.common import DebugOpt, errors_as_exit
from qmtl.cli.world import TokenOption, UrlOption, world_app
from qmtl.world_evaluate import Evaluator, EvaluatorOptions
from world_api.client import DEFAULT_URL


@world_app.command("evaluate")
def evaluate_world(
    world: Annotated[str, typer.Argument(help="World id.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    data: Annotated[
        Path | None, typer.Option(help="Catalog folder (default: the one the market names).")
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="What was evaluated, and artifacts (default ~/.qmtl/evaluator/WORLD)."),
    ] = None,
    every: Annotated[
        float | None,
        typer.Option(
            min=0.1, help="Seconds between passes (rolls on new bars); default: one pass."
        ),
    ] = None,
    debug: DebugOpt = False,
) -> None:
    """Backtest every artifact WORLD holds on the world's market, in one flow, and write
    each backtest record (source world: run ids ``world-...``, the data fingerprint); one
    JSON line per evaluation. Evaluations done are remembered under --state-dir: a restart
    redoes nothing finished. With --every, a pass every so many seconds: new bars in the
    catalog re-evaluate every strategy on the new window, until Ctrl-C."""
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    if every is not None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
    with errors_as_exit(debug):
        ev = Evaluator(
            EvaluatorOptions(world=world, url=url, token=token, data=data, state_dir=state_dir)
        )
        try:
            while True:
                for e in ev.step():
                    typer.echo(json.dumps(e.to_json(), sort_keys=True))
                if every is None or stop.wait(every):
                    break
        finally:
            ev.close()
