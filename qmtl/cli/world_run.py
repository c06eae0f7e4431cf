"""``qmtl world run W``: run every strategy world W trades, from the artifacts it holds
(see :mod:`qmtl.live.world_runner` and docs/live.md, "The world runner").

>>> from typer.testing import CliRunner
>>> from qmtl.cli.world import world_app
>>> "Run every strategy" in CliRunner().invoke(world_app, ["run", "--help"]).output
True
"""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from qmtl.cli.common import DataOpt, DebugOpt, StartOpt, errors_as_exit, fail
from qmtl.cli.live import setup_logging
from qmtl.cli.world import TokenOption, UrlOption, world_app
from qmtl.live.options import LiveOptions
from qmtl.live.start import _check
from qmtl.live.world_groups import SharedWorldRunner
from qmtl.live.world_runner import RunnerOptions, WorldRunner
from world_api.client import DEFAULT_URL


@world_app.command("run")
def run_world(
    world: Annotated[str, typer.Argument(help="World id.")],
    url: UrlOption = DEFAULT_URL,
    token: TokenOption = None,
    paper: Annotated[
        bool, typer.Option(help="Fill every order on the paper broker, even in stage live.")
    ] = False,
    brokers: Annotated[
        str | None,
        typer.Option(envvar="QMTL_KAFKA_BROKERS", help="Kafka brokers: the feed and orders."),
    ] = None,
    topic: Annotated[str, typer.Option(help="Topic of bars.")] = "bars",
    data: DataOpt = None,
    start: StartOpt = None,
    speed: Annotated[str, typer.Option(help="Without --brokers: max, Nx or N/s.")] = "10/s",
    warmup: Annotated[
        int | None, typer.Option(help="Bars of history to warm up on (default: per strategy).")
    ] = None,
    state_dir: Annotated[
        Path | None,
        typer.Option(help="Recovery folders and artifacts (default ~/.qmtl/runner/WORLD)."),
    ] = None,
    runner_id: Annotated[
        str | None, typer.Option(help="This runner's name (default: host-pid).")
    ] = None,
    ttl: Annotated[float, typer.Option(min=1.0, help="Seconds a lease lasts.")] = 15.0,
    heartbeat: Annotated[
        float | None, typer.Option(min=0.1, help="Seconds between heartbeats (ttl/3).")
    ] = None,
    orders_store: Annotated[
        str | None, typer.Option(help="Order store (default: one per strategy).")
    ] = None,
    orders_topic: Annotated[str, typer.Option(help="Topic for OrderIntents.")] = "orders",
    fills_topic: Annotated[str, typer.Option(help="Topic for fills.")] = "fills",
    targets_topic: Annotated[
        str | None,
        typer.Option(
            help="Also publish every strategy's targets here, keyed by world, for the "
            "world's book (`qmtl world book-run`) to net into one account."
        ),
    ] = None,
    max_activation_age: Annotated[
        float, typer.Option(help="Seconds without world news before orders are held.")
    ] = 30.0,
    snapshot_interval: Annotated[float, typer.Option(help="Seconds between snapshots.")] = 1.0,
    max_bars: Annotated[
        int | None, typer.Option(help="Each strategy's run ends after this many live bars.")
    ] = None,
    until_done: Annotated[
        bool, typer.Option(help="Exit once every run started has ended (with --max-bars).")
    ] = False,
    shadow: Annotated[
        bool,
        typer.Option(
            help="Also run the strategies the world does not trade (stage backtest, "
            "inactive), their orders held, building their shadow record."
        ),
    ] = False,
    shared: Annotated[
        bool,
        typer.Option(
            help="Run the strategies of one interval as one shared-feed group: one feed "
            "reader and one flow, a node they share computed once (docs/live.md)."
        ),
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Run every strategy WORLD trades (stage paper or live), each from the artifact
    ``qmtl submit`` stored, until Ctrl-C; strategies promoted later are added and those
    demoted removed while the others run. A strategy whose code changed since the world
    evaluated it is refused. Several runners of one world split its strategies. With
    ``--shadow`` every other strategy of WORLD runs too, its orders held and its updates
    in its ``shadow`` record, until the world promotes it."""
    setup_logging(debug)
    live = LiveOptions(
        brokers=brokers,
        topic=topic,
        paper=paper,
        data=data,
        start=start,
        speed=speed,
        warmup=warmup,
        orders_store=orders_store,
        orders_topic=orders_topic,
        fills_topic=fills_topic,
        targets_topic=targets_topic,
        max_activation_age=max_activation_age,
        snapshot_interval=snapshot_interval,
        max_bars=max_bars,
        shadow=shadow,
    )
    with errors_as_exit(debug):
        _check(live)
    if targets_topic and not brokers:
        raise fail("--targets-topic needs --brokers: the targets go to a Kafka topic")
    if ttl <= (heartbeat or ttl / 3):
        raise fail(f"--heartbeat {heartbeat} must be shorter than --ttl {ttl}")
    o = RunnerOptions(
        world=world,
        url=url,
        token=token,
        runner_id=runner_id,
        state_dir=state_dir,
        ttl=ttl,
        heartbeat=heartbeat,
        until_done=until_done,
    )
    stop = threading.Event()

    def on_signal(_signum: int, _frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    with errors_as_exit(debug):
        (SharedWorldRunner if shared else WorldRunner)(o, live).run(stop)
