"""World-side evaluation over HTTP against the real app (SQLite and PostgreSQL).

In a world whose policy says ``evaluation: world`` a client's backtest updates are refused
(the owner's too; paper updates from runners are not); the evaluator backtests every stored
artifact on the world's market in one flow and writes the records, whose numbers equal a
local ``qmtl run --mode backtest`` on the same catalog and window; a restart of the
evaluator redoes and duplicates nothing; new bars in the catalog re-evaluate every strategy
on the new window; ``qmtl submit`` sends the artifact and waits for the world's answer."""

from __future__ import annotations

import contextlib
import json
import textwrap
import threading

import numpy as np
import pytest
from typer.testing import CliRunner

from connectors.data.catalog import Catalog
from connectors.data.synthetic import generate_bars
from dataflows.gate import ActivationBook
from qmtl.alpha.spec import GraphStrategy
from qmtl.artifact import build_artifact
from qmtl.cli import app
from qmtl.core.contracts import ActivationEvent, ControlEvent, EvaluationEvent, MetricsUpdate
from qmtl.core.expr import col
from qmtl.loader import load_strategy
from qmtl.submit import submit
from qmtl.world_evaluate import Evaluator, EvaluatorOptions
from tests.world_api.conftest import serve
from world_api import runner_client as rc
from world_api.client import ForbiddenError, KeepAlive, NotFoundError, WorldServiceClient
from world_api.domain.evaluation import evaluated
from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.store import open_store

DAY = 86_400 * 10**9
SOURCE = textwrap.dedent("""
    from qmtl import Strategy

    class Up(Strategy):
        symbols = ["AAA", "BBB"]
        n: int = 5

        def signal(self, bars):
            return bars.close > bars.close.sma(self.n)
""")
runner = CliRunner()


def market(catalog, window: str) -> str:
    return (
        f"universe: {{symbols: [AAA, BBB, CCC]}}\ninterval: 1d\nwindow: {window}\n"
        f"execution: {{rule: next_open, spread_bps: 2, cost_bps: 1}}\n"
        f"source: {{catalog: {catalog}}}\n"
    )


def mom_alpha() -> GraphStrategy:
    return GraphStrategy(col("close") > col("close").shift(3), name="mom", symbols=["AAA", "CCC"])


@pytest.fixture
def world(tmp_path, store_url):
    with _world(tmp_path, store_url) as got:
        yield got


@contextlib.contextmanager
def _world(tmp_path, store_url, clock=None):
    got = runner.invoke(
        app,
        [
            "data",
            "demo",
            "--data",
            str(tmp_path / "d"),
            "--bars",
            "300",
            "--symbols",
            "AAA,BBB,CCC",
        ],
    )
    assert got.exit_code == 0, got.output
    store = open_store(store_url)
    roles = [("ops", "operator"), ("alice", "developer"), ("ev", "runner")]
    tokens = {n: create_token(store, r, n) for n, r in roles}
    made = create_app(store)
    if clock is not None:  # the world's clock, fixed
        made.state.service.clock = clock
    with serve(made) as url:
        cs = {n: WorldServiceClient(url, t) for n, t in tokens.items()}
        cs["ops"].create_world("w")
        cs["ops"].put_policy("w", "evaluation: world\nmin_bars: 10")
        cs["ops"].put_market("w", market(tmp_path / "d", "{start: 2015-03-01, end: 2015-09-30}"))
        (tmp_path / "up.py").write_text(SOURCE)
        up = load_strategy(f"{tmp_path / 'up.py'}:Up")(n=7)
        for sid, s in (("up", up), ("mom", mom_alpha())):
            rc.put_artifact(cs["alice"], "w", build_artifact(s, sid))
        yield cs, url, tokens, tmp_path
        for c in cs.values():
            c.close()
    store.close()


def claim(sid: str, sharpe: float, mode: str = "backtest", run: str = "mine") -> MetricsUpdate:
    return MetricsUpdate(
        world="w",
        strategy_id=sid,
        run_id=run,
        seq=1,
        mode=mode,
        as_of=DAY,
        n_bars=1,
        metrics={"sharpe": sharpe},
        returns=[(DAY, 0.01)],
    )


def record(c: WorldServiceClient, sid: str) -> dict:
    return c.strategy("w", sid)["records"]["backtest"]


def local_run(tmp_path, target: list[str], out: str, start: str, end: str) -> dict:
    got = runner.invoke(
        app,
        [
            "run",
            "--mode",
            "backtest",
            *target,
            "--data",
            str(tmp_path / "d"),
            "--start",
            start,
            "--end",
            end,
            "--out",
            str(tmp_path / out),
        ],
    )
    assert got.exit_code == 0, got.output
    return json.loads((tmp_path / out / "metrics.json").read_text())


def test_the_world_evaluates_and_refuses_client_backtests(world):
    cs, url, tokens, tmp = world
    with pytest.raises(ForbiddenError, match="evaluates backtests itself"):
        cs["alice"].post_metrics("w", [claim("up", 99.0)])
    ev = Evaluator(EvaluatorOptions("w", url, tokens["ev"], state_dir=tmp / "ev"))
    done = ev.step()
    ev.close()
    assert sorted(e.strategy_id for e in done) == ["mom", "up"]
    assert all(e.error is None for e in done), done
    for e in done:
        rec = record(cs["ops"], e.strategy_id)
        assert rec["runs"] == [e.run_id] and evaluated(e.artifact_id, rec["runs"])
        assert len(e.fingerprint) == 64
    # the same window for both: same first and last bar, same count
    assert len({(e.first, e.last, e.n_bars) for e in done}) == 1
    # the world's numbers are a local run's on the same catalog, window and execution
    alpha = mom_alpha()  # the market's execution, written into its spec for the local run
    alpha.execution, alpha.spread_bps, alpha.cost_bps = "next_open", 2.0, 1.0
    (tmp / "mom.json").write_text(json.dumps(alpha.to_spec()))
    costs = ["--execution", "next_open", "--cost-bps", "1", "-p", "spread_bps=2"]
    mine = {
        "up": local_run(
            tmp, [str(tmp / "up.py"), "-p", "n=7", *costs], "up", "2015-03-01", "2015-09-30"
        ),
        "mom": local_run(tmp, ["--spec", str(tmp / "mom.json")], "mom", "2015-03-01", "2015-09-30"),
    }
    for sid, doc in mine.items():
        metrics = doc.get("metrics", doc)
        world_m = record(cs["ops"], sid)["metrics"]
        for k in ("sharpe", "total_return", "max_drawdown", "volatility"):
            assert world_m[k] == pytest.approx(metrics[k], abs=1e-12, rel=0), (sid, k)
        assert world_m["n_bars"] == metrics["n_bars"]
    # the owner claiming sharpe 99 afterwards is refused; the record keeps the world's number
    before = record(cs["ops"], "up")["metrics"]["sharpe"]
    with pytest.raises(ForbiddenError):
        cs["alice"].post_metrics("w", [claim("up", 99.0, run="again")])
    assert record(cs["ops"], "up")["metrics"]["sharpe"] == before != 99.0
    # a runner's paper update is not a backtest: accepted
    got = cs["ev"].post_metrics("w", [claim("up", 0.5, mode="paper", run="paper1")])
    assert got["accepted"] == 1


def test_a_restart_redoes_and_duplicates_nothing(world):
    cs, url, tokens, tmp = world
    opts = EvaluatorOptions("w", url, tokens["ev"], state_dir=tmp / "ev")
    ev = Evaluator(opts)
    first = {e.strategy_id: e for e in ev.step()}
    ev.close()
    again = Evaluator(opts)
    assert again.step() == []  # nothing new: nothing run, nothing posted
    again.close()
    # killed after posting "up" but before remembering it: the repost is a duplicate
    state = json.loads(opts.state_file.read_text())
    del state[first["up"].key]
    opts.state_file.write_text(json.dumps(state))
    third = Evaluator(opts)
    redo = third.step()
    third.close()
    assert [e.strategy_id for e in redo] == ["up"]
    rec = record(cs["ops"], "up")
    assert rec["runs"] == [first["up"].run_id] and rec["n_bars"] == first["up"].n_bars
    assert rec["metrics"]["sharpe"] == first["up"].sharpe
    # the state folder lost altogether: everything is redone, and the world keeps one run each
    opts.state_file.unlink()
    lost = Evaluator(opts)
    assert sorted(e.strategy_id for e in lost.step()) == ["mom", "up"]
    lost.close()
    for sid, e in first.items():
        rec = record(cs["ops"], sid)
        assert rec["runs"] == [e.run_id] and rec["metrics"]["sharpe"] == e.sharpe
    audit = cs["ops"].audit("w")
    posts = [a for a in audit if a["action"] == "post_metrics" and a["detail"]["updates"]]
    assert len(posts) == 2  # one stored post per strategy; the reposts were duplicates


def test_new_bars_roll_every_record_forward(world):
    cs, url, tokens, tmp = world
    cs["ops"].put_market("w", market(tmp / "d", "{last_bars: 100}"))
    opts = EvaluatorOptions("w", url, tokens["ev"], state_dir=tmp / "ev")
    ev = Evaluator(opts)
    one = {e.strategy_id: e for e in ev.step()}
    cat = Catalog(tmp / "d")
    last = int(cat.read_column("AAA", "1d", "ts")[-1])
    more = generate_bars(20, seed=9)
    more["ts"] = last + DAY * (1 + np.arange(20))
    for sym in ("AAA", "BBB", "CCC"):
        cat.write(sym, "1d", more)
    two = {e.strategy_id: e for e in ev.step()}  # the roll: both again, in one flow
    assert ev.step() == []
    ev.close()
    assert sorted(two) == ["mom", "up"]
    assert any(e["active"] for x in one.values() for e in x.events)  # the first decisions
    for sid in two:
        assert two[sid].last == last + 20 * DAY and two[sid].n_bars == one[sid].n_bars == 100
        assert two[sid].first == one[sid].first + 20 * DAY
        rec = record(cs["ops"], sid)
        assert rec["runs"][-1] == two[sid].run_id and rec["n_bars"] == 100
        assert rec["metrics"]["sharpe"] == two[sid].sharpe


def test_submit_sends_the_artifact_and_waits_for_the_worlds_answer(world):
    cs, url, tokens, tmp = world
    (tmp / "down.py").write_text(SOURCE.replace("class Up", "class Down").replace(">", "<"))
    got = runner.invoke(
        app,
        [
            "submit",
            str(tmp / "down.py"),
            "--world",
            "w",
            "--url",
            url,
            "--token",
            tokens["alice"],
            "--timeout",
            "0.3",
        ],
    )
    assert got.exit_code == 0, got.output
    assert "still evaluating" in got.output
    assert "Down" not in cs["ops"].strategies("w").__repr__()  # nothing posted by the client
    box: dict = {}
    waiter = threading.Thread(
        target=lambda: box.update(
            r=submit(load_strategy(f"{tmp / 'down.py'}:Down"), "w", url, tokens["alice"], wait=30)
        )
    )
    waiter.start()
    ev = Evaluator(EvaluatorOptions("w", url, tokens["ev"], state_dir=tmp / "ev"))
    done = {e.strategy_id: e for e in ev.step()}
    ev.close()
    waiter.join(timeout=60)
    res = box["r"]
    assert not res.evaluating and res.run_id == done["Down"].run_id
    assert res.metrics["sharpe"] == done["Down"].sharpe
    assert res.n_bars == done["Down"].n_bars and res.status in ("active", "candidate")


def test_symbols_outside_the_universe_are_refused_with_the_hint(world):
    cs, url, tokens, tmp = world
    wide = GraphStrategy(col("close") > 0, name="wide", symbols=["AAA", "ZZZ"])
    res = submit(wide, "w", url, tokens["alice"], wait=5)
    assert res.status == "rejected" and "ZZZ" in res.improvement_hints[0]
    assert "outside world 'w''s universe" in res.improvement_hints[0]
    with pytest.raises(NotFoundError):  # nothing stored
        rc.artifact(cs["ops"], "w", res.strategy_id)
    hourly = GraphStrategy(col("close") > 0, name="hourly", symbols=["AAA"], interval="1h")
    res = submit(hourly, "w", url, tokens["alice"], wait=5)
    assert res.status == "rejected" and "evaluates on 1d bars" in res.improvement_hints[0]
    # an artifact stored anyway (an operator's) is refused by the evaluator, with the reason
    rc.put_artifact(cs["alice"], "w", build_artifact(wide, "up"))  # replaces up's artifact
    ev = Evaluator(EvaluatorOptions("w", url, tokens["ev"], state_dir=tmp / "ev"))
    done = {e.strategy_id: e for e in ev.step()}
    ev.close()
    assert done["up"].error == "symbols outside the market's universe: ZZZ"
    assert done["mom"].error is None
    with pytest.raises(NotFoundError, match="has not reported"):  # no record written
        cs["ops"].strategy("w", "up")


def test_the_command_prints_one_line_per_evaluation_and_fails_without_a_market(world):
    cs, url, tokens, tmp = world
    args = ["world", "evaluate", "w", "--url", url, "--token", tokens["ev"]]
    got = runner.invoke(app, [*args, "--state-dir", str(tmp / "ev")])
    assert got.exit_code == 0, got.output
    lines = [json.loads(line) for line in got.output.splitlines()]
    assert sorted(x["strategy_id"] for x in lines) == ["mom", "up"]
    assert all(x["error"] is None and x["run_id"].startswith("world-") for x in lines)
    again = runner.invoke(app, [*args, "--state-dir", str(tmp / "ev")])
    assert again.exit_code == 0 and again.output == ""
    cs["ops"].create_world("bare")
    bare = runner.invoke(
        app,
        [
            "world",
            "evaluate",
            "bare",
            "--url",
            url,
            "--token",
            tokens["ev"],
            "--state-dir",
            str(tmp / "ev2"),
        ],
    )
    assert bare.exit_code == 1 and "has no market" in bare.output


NOW = 1_700_000_000 * 10**9  # the world's fixed clock


def stream(c: WorldServiceClient, after: int) -> list:
    """The world's events after seq ``after``, through GET /worlds/w/events (until caught up),
    keep-alives left out."""
    with c.events("w", after=after) as got:
        return [e for e in got if not isinstance(e, KeepAlive)]


def test_a_roll_is_one_reevaluated_event_per_strategy_on_the_stream(tmp_path, store_url):
    with _world(tmp_path, store_url, clock=lambda: NOW) as (cs, url, tokens, tmp):
        ops = cs["ops"]
        version = ops.put_market("w", market(tmp / "d", "{last_bars: 100}"))["version"]
        ev = Evaluator(EvaluatorOptions("w", url, tokens["ev"], state_dir=tmp / "ev"))
        one = {e.strategy_id: e for e in ev.step()}
        first = [e for e in stream(ops, 0) if isinstance(e, EvaluationEvent)]
        assert sorted(e.strategy_id for e in first) == ["mom", "up"]
        assert {e.kind for e in first} == {"evaluated"}
        # a gate between mom's sharpe now and after the roll (a scratch world evaluates the
        # rolled window first): the roll must change mom's decision, with the reason
        cat = Catalog(tmp / "d")
        last = int(cat.read_column("AAA", "1d", "ts")[-1])
        more = generate_bars(20, seed=9)
        more["ts"] = last + DAY * (1 + np.arange(20))
        ops.create_world("scratch")
        ops.put_policy("scratch", "evaluation: world\nmin_bars: 10")
        ops.put_market("scratch", market(tmp / "d", "{last_bars: 100}"))
        rc.put_artifact(cs["alice"], "scratch", build_artifact(mom_alpha(), "mom"))
        for sym in ("AAA", "BBB", "CCC"):
            cat.write(sym, "1d", more)
        scratch = Evaluator(EvaluatorOptions("scratch", url, tokens["ev"], state_dir=tmp / "s"))
        (ahead,) = scratch.step()
        scratch.close()
        s1, s2 = one["mom"].sharpe, ahead.sharpe
        assert s1 != s2
        mid = (s1 + s2) / 2
        ops.put_policy("w", f'evaluation: world\nmin_bars: 10\ngates: {{sharpe: ">= {mid!r}"}}')
        seq = int(ops.world("w")["seq"])
        # the roll
        two = {e.strategy_id: e for e in ev.step()}
        assert sorted(two) == ["mom", "up"]
        rolled = stream(ops, seq)
        evals = [e for e in rolled if isinstance(e, EvaluationEvent)]
        assert sorted(e.strategy_id for e in evals) == ["mom", "up"]  # one per strategy
        for e in evals:
            mine = two[e.strategy_id]
            assert e.kind == "reevaluated" and e.ts == NOW and e.run_id == mine.run_id
            assert e.market_version == version and e.fingerprint == mine.fingerprint
            assert (e.first, e.last, e.n_bars) == (mine.first, mine.last, 100)
            assert e.last == last + 20 * DAY and e.first == one[e.strategy_id].first + 20 * DAY
            rec = record(ops, e.strategy_id)["metrics"]
            assert e.metrics["sharpe"] == rec["sharpe"] == mine.sharpe
            assert e.metrics["max_drawdown"] == rec["max_drawdown"]
        # mom's decision changed on the roll: its activation event, with the reason, comes
        # just before its evaluation event, and is the one the evaluator was told of
        changes = [e for e in rolled if isinstance(e, ActivationEvent) and e.strategy_id == "mom"]
        assert len(changes) == 1 and changes[0].active == (s2 >= mid)
        if not changes[0].active:
            assert "sharpe" in changes[0].reason and "gate" in changes[0].reason
        assert changes[0].reason and changes[0].seq < next(
            e.seq for e in evals if e.strategy_id == "mom")
        assert [x["reason"] for x in two["mom"].events] == [changes[0].reason]
        assert [x["active"] for x in two["mom"].events] == [changes[0].active]
        # every seq on the stream is a world event, in order, none repeated
        seqs = [e.seq for e in rolled]
        assert seqs == sorted(set(seqs)) and seqs[-1] == int(ops.world("w")["seq"])
        # a second pass with no new data: no evaluation, no event
        assert ev.step() == []
        ev.close()
        assert stream(ops, seqs[-1]) == []
        # a live run's book follows the stream past the evaluation events: its seq is the
        # world's, its table the activation snapshot's
        book = ActivationBook("w")
        with ops.events("w", after=0) as got:
            for e in got:
                if isinstance(e, EvaluationEvent):
                    book.advance(e.seq, 0.0)
                elif isinstance(e, ControlEvent):
                    book.control(e.model_dump(), 0.0)
                elif isinstance(e, ActivationEvent):
                    book.apply_event(e.model_dump(), 0.0)
        snap = ops.activation("w")
        assert book.seq == int(snap["seq"]) and book.gone is None
        for row in snap["strategies"]:
            assert book.get(row["strategy_id"]).active == row["active"]
