"""The world runner feeds the world's book, through Tansu and a real ``qmtl world serve``:
one ``qmtl world run --targets-topic`` process runs two strategies of the world, long and
short the same symbol, each publishing its targets; the book reads them from the topic and
sends one net order for the account, and its paper fill is attributed to both strategies by
their shares of the change (fees included)."""

from __future__ import annotations

import textwrap
import time
from collections import defaultdict

import pytest
from typer.testing import CliRunner

from connectors.brokers.paper import PaperBroker
from qmtl.artifact import build_artifact
from qmtl.book_run.process import Loop
from qmtl.book_run.service import BookConfig, BookService
from qmtl.book_run.store import open_book_store
from qmtl.book_run.targets import KafkaTargets, TargetUpdate
from qmtl.cli import app
from qmtl.core.contracts import MetricsUpdate
from qmtl.loader import load_strategy
from tests.e2e.live_helpers import Live, make_data, publish, topic_name
from tests.e2e.test_world_runner import WorldServe
from world_api import runner_client as rc
from world_api.client import WorldServiceClient

SOURCE = textwrap.dedent("""
    from qmtl import Strategy

    class Long(Strategy):
        symbols = ["AAA"]

        def signal(self, bars):
            return bars.close * 0.0 + 0.8

    class Short(Strategy):
        symbols = ["AAA"]

        def signal(self, bars):
            return bars.close * 0.0 - 0.5
""")
POLICY = "promotion:\n  paper: {min_bars: 50}\n"
N = 40  # bars on the feed


class ListTargets:
    """Targets already read from the topic, handed to the book one batch at a time."""

    def __init__(self) -> None:
        self.batch: list[TargetUpdate] = []

    def poll(self) -> list[TargetUpdate]:
        """The batch set, once."""
        out, self.batch = self.batch, []
        return out

    def close(self) -> None:
        """Nothing to release."""


def read_targets(brokers: str, topic: str, want: int) -> list[TargetUpdate]:
    src = KafkaTargets(brokers, "w", topic)
    got: list[TargetUpdate] = []
    try:
        end = time.monotonic() + 30
        while len(got) < want and time.monotonic() < end:
            got += src.poll(0.5)
    finally:
        src.close()
    return got


def test_one_runner_two_strategies_one_net_order(kafka, tmp_path) -> None:
    server = WorldServe(tmp_path)
    url = server.url
    (tmp_path / "ls.py").write_text(SOURCE)
    targets = f"targets-{time.time_ns()}"
    bars = topic_name()
    try:
        with WorldServiceClient(url) as c:
            c.create_world("w")
            c.put_policy("w", POLICY)
            for sid in ("Long", "Short"):
                c.post_metrics("w", [MetricsUpdate(
                    world="w", strategy_id=sid, run_id="bt", seq=1, mode="backtest", as_of=0,
                    n_bars=100, metrics={"sharpe": 1.0})])  # fmt: skip
                assert c.strategy("w", sid)["stage"] == "paper"
                cls = load_strategy(f"{tmp_path / 'ls.py'}:{sid}")
                rc.put_artifact(c, "w", build_artifact(cls(), sid))
        # the CLI refuses targets without a Kafka to put them on
        cli = CliRunner().invoke(
            app, ["world", "run", "w", "--url", url, "--paper", "--targets-topic", "t"]
        )
        assert cli.exit_code == 1 and "--targets-topic needs --brokers" in cli.output
        assert publish(kafka.brokers, bars, make_data(N, symbols=("AAA",))) == N
        runner = Live([
            "world", "run", "w", "--url", url, "--brokers", kafka.brokers, "--topic", bars,
            "--paper", "--warmup", "0", "--data", str(tmp_path / "none"),
            "--state-dir", str(tmp_path / "state"), "--heartbeat", "0.3", "--ttl", "3",
            "--snapshot-interval", "0.2", "--max-bars", str(N), "--until-done",
            "--targets-topic", targets,
        ])  # fmt: skip
        assert runner.wait() == 0, runner.output()
        got = read_targets(kafka.brokers, targets, 2 * N)
        with WorldServiceClient(url) as c:
            snap = {r["strategy_id"]: r for r in c.activation("w")["strategies"]}
    finally:
        server.stop()
    assert len(got) == 2 * N  # every bar of both strategies, on one topic
    assert {u.strategy_id for u in got} == {"Long", "Short"}
    by_ts: dict[int, dict[str, TargetUpdate]] = defaultdict(dict)
    for u in got:
        by_ts[u.ts][u.strategy_id] = u
    both = sorted(ts for ts, d in by_ts.items() if len(d) == 2)
    assert len(both) >= 2, sorted(by_ts)
    t1, t2 = both[0], both[1]
    lw, sw = by_ts[t1]["Long"].weights["AAA"], by_ts[t1]["Short"].weights["AAA"]
    assert (lw, sw) == (pytest.approx(0.8), pytest.approx(-0.5))
    wl, ws = snap["Long"]["weight"], snap["Short"]["weight"]
    assert snap["Long"]["active"] and snap["Short"]["active"] and wl > 0 and ws > 0
    # the book, on what the runner's two strategies published
    cash = 10_000.0
    svc = BookService(
        open_book_store(str(tmp_path / "b.db")),
        PaperBroker(cash=cash, fee_bps=10.0),
        BookConfig("w", symbols=("AAA",)),
    )
    svc.start()
    feed = ListTargets()
    book = Loop(svc, feed, weights={"Long": wl, "Short": ws}, reconcile_every=1e9)
    feed.batch = list(by_ts[t1].values())
    book.once()
    p1 = by_ts[t1]["Long"].prices["AAA"]
    want = (wl * 0.8 - ws * 0.5) * cash / p1
    assert [o.qty for o in svc.led.orders.values()] == [pytest.approx(want)]  # one net order
    feed.batch = list(by_ts[t2].values())
    book.once()
    assert len(svc.led.fills) == 1
    fill = svc.led.fills[0]
    assert fill.price == pytest.approx(by_ts[t2]["Long"].prices["AAA"])
    assert fill.qty == pytest.approx(want)
    gl, gs = wl * 0.8 * cash / p1, -ws * 0.5 * cash / p1  # each one's change, in shares
    assert svc.led.strategy_pos[("Long", "AAA")] == pytest.approx(gl)
    assert svc.led.strategy_pos[("Short", "AAA")] == pytest.approx(gs)
    assert svc.led.strategy_fees["Long"] == pytest.approx(fill.fee * gl / (gl - gs))
    assert svc.led.strategy_fees["Short"] == pytest.approx(fill.fee * -gs / (gl - gs))
    assert svc.differences() == []
