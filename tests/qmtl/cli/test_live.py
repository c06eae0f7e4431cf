"""`qmtl run --mode live` and `qmtl feed replay` as a user drives them."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
from typer.testing import CliRunner

from qmtl.cli import app

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
runner = CliRunner()


def demo(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    got = runner.invoke(app, ["data", "demo", "--data", str(data), "--bars", "300"])
    assert got.exit_code == 0, got.output
    return data


def test_a_paper_run_with_nothing_else_started(tmp_path):
    """No broker, no world: the catalog replayed in process, a world served in process."""
    data = demo(tmp_path)
    out = tmp_path / "run"
    got = runner.invoke(app, [
        "run", "--mode", "live", str(EXAMPLES / "sma_cross.py"), "--paper", "--data", str(data),
        "--speed", "max", "--max-bars", "200", "--out", str(out)])
    assert got.exit_code == 0, got.output
    assert "200 live bars" in got.output and "sharpe" in got.output
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["mode"] == "paper" and doc["world"] == "local" and doc["n_bars"] == 100
    table = pq.read_table(out / "bars.parquet")
    assert table.column_names == ["ts", "symbol", "weight", "return", "equity"]
    assert table.num_rows == 200
    assert (out / "local-world.db").is_file() and (out / "orders.db").is_file()


def test_a_live_run_takes_the_strategy_id_submit_would(tmp_path):
    """`-p fast=5` live is the strategy `qmtl submit -p fast=5` put in the world, not a
    second one under the bare class name the world would never activate."""
    data = demo(tmp_path)
    out = tmp_path / "run"
    got = runner.invoke(app, [
        "run", "--mode", "live", str(EXAMPLES / "sma_cross.py"), "--paper", "--data", str(data),
        "--speed", "max", "--max-bars", "10", "--out", str(out), "-p", "fast=5"])
    assert got.exit_code == 0, got.output
    assert json.loads((out / "metrics.json").read_text())["strategy"] == "SmaCross-fast=5"


def test_live_without_paper_needs_a_broker(tmp_path):
    got = runner.invoke(app, ["run", "--mode", "live", str(EXAMPLES / "sma_cross.py"),
                              "--data", str(tmp_path)])
    assert got.exit_code == 1
    assert "--paper" in got.output and "Traceback" not in got.output


def test_unreachable_broker_and_world_are_one_line_errors(tmp_path):
    data = demo(tmp_path)
    got = runner.invoke(app, [
        "run", "--mode", "live", str(EXAMPLES / "sma_cross.py"), "--paper", "--data", str(data),
        "--url", "http://127.0.0.1:1", "--max-bars", "1"])
    assert got.exit_code == 1 and "cannot reach the world service" in got.output
    got = runner.invoke(app, [
        "run", "--mode", "live", str(EXAMPLES / "sma_cross.py"), "--paper", "--data", str(data),
        "--brokers", "127.0.0.1:1", "--max-bars", "1", "--out", str(tmp_path / "o")])
    assert got.exit_code == 1 and "cannot reach Kafka at 127.0.0.1:1" in got.output
    assert "Traceback" not in got.output


def test_feed_replay_publishes_the_catalog_in_time_order(kafka, tmp_path):
    from tests.e2e.live_helpers import consume

    data = demo(tmp_path)
    got = runner.invoke(app, [
        "feed", "replay", "--brokers", kafka.brokers, "--topic", "cli-replay", "--data", str(data),
        "--symbols", "AAPL,MSFT", "--start", "2015-06-01", "--speed", "max"])
    assert got.exit_code == 0, got.output
    msgs = consume(kafka.brokers, "cli-replay")
    from connectors.data.catalog import Catalog
    from qmtl.core.times import parse_time

    cat = Catalog(data)
    want = sum(len(cat.read(s, "1d", parse_time("2015-06-01"))["ts"]) for s in ("AAPL", "MSFT"))
    assert f"published {want} bars" in got.output and len(msgs) == want
    ts = [json.loads(v)["ts"] for _, v in msgs]
    assert ts == sorted(ts) and {k for k, _ in msgs} == {b"AAPL", b"MSFT"}
    got = runner.invoke(app, ["feed", "replay", "--brokers", kafka.brokers, "--data", str(data),
                              "--symbols", "ZZZ"])
    assert got.exit_code == 1 and "no 1d bars for 'ZZZ'" in got.output
    got = runner.invoke(app, ["feed", "replay", "--brokers", kafka.brokers, "--speed", "fast"])
    assert got.exit_code == 1 and "speed 'fast'" in got.output


def test_a_second_run_on_the_same_state_says_its_orders_were_already_recorded(tmp_path):
    """The same bars again on the same order store: the orders are the ones the first run
    recorded (the store keys them by world, strategy, symbol and bar), so the summary says
    none are new instead of counting them as this run's."""
    import re

    from tests.e2e.live_helpers import activate, world_server

    data = demo(tmp_path)
    out = tmp_path / "run"
    with world_server(tmp_path, "w") as url:
        activate(url, "w", "SmaCross")
        # paced, so that the gate has the world's activation before most bars
        args = ["run", "--mode", "live", str(EXAMPLES / "sma_cross.py"), "--paper",
                "--data", str(data), "--speed", "100/s", "--max-bars", "200",
                "--out", str(out), "--url", url, "--world", "w"]
        first = runner.invoke(app, args)
        assert first.exit_code == 0, first.output
        got = re.search(r"(\d+) orders · (\d+) fills", " ".join(first.output.split()))
        assert got, first.output
        orders, fills = int(got[1]), int(got[2])
        assert orders > 0 and fills > 0
        second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    got = re.search(r"(\d+) new orders \((\d+) already recorded\) · "
                    r"(\d+) new fills \((\d+) already recorded\)", " ".join(second.output.split()))
    assert got, second.output
    new_orders, old_orders, new_fills, old_fills = (int(g) for g in got.groups())
    assert (old_orders, old_fills) == (orders, fills)
    # the second run in this process logs to its own stderr (not the first run's, closed)
    assert "is active in world 'w'" in second.output and "Logging error" not in second.output
    # what it printed is what was new (the printer shows up to 20 lines a second)
    printed = second.output.count("order SmaCross") + second.output.count("fill  SmaCross")
    assert printed == new_orders + new_fills or new_orders + new_fills > 20
