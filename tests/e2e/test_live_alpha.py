"""An alpha (or a spec) runs live the way it backtested: the same bars through Kafka (Tansu),
one message per bar, give the backtest's weights, returns and metrics; `qmtl run --mode live`
takes `--alpha` and `--spec` as it takes a strategy file."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

import qmtl
from qmtl.cli import app
from qmtl.live import LiveOptions, run_live
from qmtl.runner import backtest
from tests.e2e.live_helpers import (
    activate,
    make_data,
    max_abs_diff,
    publish,
    topic_name,
    world_server,
    write_catalog,
)

SYMBOLS = ["AAA", "BBB", "CCC", "DDD"]
TEXT = "rank(-ts_delta(close, 5)) * ts_rank(volume, 10)"


def unequal(n: int = 120):
    """Bars of the four symbols, some missing on three of them (unequal calendars)."""
    data = make_data(n, symbols=tuple(SYMBOLS), seed=21)
    rng = np.random.default_rng(8)
    return {s: {k: v[keep] for k, v in b.items()}
            for s, b in data.items()
            for keep in [rng.random(n) > (0.0 if s == "AAA" else 0.1)]}


def test_an_alpha_live_through_kafka_equals_its_backtest(kafka, tmp_path):
    data = unequal()
    total = sum(len(b["ts"]) for b in data.values())
    topic = topic_name()
    assert publish(kafka.brokers, topic, data) == total
    strategy = qmtl.alpha(TEXT, symbols=SYMBOLS, groups={"AAA": "x", "BBB": "x", "CCC": "y",
                                                         "DDD": "y"}, cost_bps=1.0)
    bt = backtest(strategy, data=data)
    with world_server(tmp_path) as url:
        activate(url, "w", strategy.name)  # an alpha's id: alpha- and its graph's content id
        opts = LiveOptions(brokers=kafka.brokers, topic=topic, world="w", url=url, paper=True,
                           data=tmp_path / "catalog", out=tmp_path / "out", max_bars=total,
                           orders_store=str(tmp_path / "orders.db"), warmup=0)
        orders: list = []
        res = run_live(strategy, opts, on_order=lambda _sid, intents, fills: orders.append(
            (intents, fills)))
    assert res.strategy == strategy.name
    assert len(bt.returns) == 120 and np.array_equal(res.ts, bt.ts)
    assert max_abs_diff(res.returns, bt.returns) <= 1e-12
    live_w = res.bars.column("weight").to_numpy()
    assert max_abs_diff(live_w, bt.bars.column("weight").to_numpy()) <= 1e-12
    assert np.abs(live_w).max() > 0.05  # the alpha trades: not an all-flat comparison
    for name, value in bt.metrics.items():
        assert res.metrics[name] == pytest.approx(value, rel=1e-12, abs=1e-12, nan_ok=True), name
    intents = [i for batch, _ in orders for i in batch]
    assert any(i.target_weight < 0 for i in intents) and any(i.target_weight > 0 for i in intents)


def test_qmtl_run_live_takes_a_spec_and_an_alpha(tmp_path):
    """The CLI's live path: a spec file replayed from the catalog in process, then the alpha
    it was written from; both equal the backtest of the spec."""
    data = make_data(80, symbols=tuple(SYMBOLS), seed=4)
    write_catalog(tmp_path / "catalog", data)
    strategy = qmtl.alpha(TEXT, symbols=SYMBOLS, neutralize=None, name="rev")
    spec = tmp_path / "rev.json"
    spec.write_text(json.dumps(strategy.to_spec()))
    bt = backtest(qmtl.from_spec(spec), data=data)
    runner = CliRunner()
    common = ["run", "--mode", "live", "--paper", "--data", str(tmp_path / "catalog"),
              "--speed", "max", "--warmup", "0", "--max-bars", str(80 * len(SYMBOLS))]
    for name, what in (("spec", ["--spec", str(spec)]),
                       ("alpha", ["--alpha", TEXT, "--symbols", ",".join(SYMBOLS),
                                  "--neutralize", "none"])):
        out = tmp_path / name
        got = runner.invoke(app, [*common, *what, "--out", str(out)])
        assert got.exit_code == 0, got.output
        assert f"{80 * len(SYMBOLS)} live bars" in got.output
        doc = json.loads((out / "metrics.json").read_text())
        # the spec keeps its name; the alpha from the command line is alpha-<content id>
        assert doc["strategy"] == ("rev" if name == "spec" else f"alpha-{strategy.weight.id[:10]}")
        table = pq.read_table(out / "bars.parquet")
        assert max_abs_diff(table.column("weight").to_numpy(),
                            bt.bars.column("weight").to_numpy()) <= 1e-12
        assert max_abs_diff(table.column("return").to_numpy(),
                            bt.bars.column("return").to_numpy()) <= 1e-12
        assert doc["metrics"]["sharpe"] == pytest.approx(bt.metrics["sharpe"], rel=1e-12)
