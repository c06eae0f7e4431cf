"""The run's sink (--sink): a live paper run writes its bars, returns and fills to a local
ILP listener (TCP, as the QuestDB writer's tests do), every row exactly once, with the values
of bars.parquet and the order store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from typer.testing import CliRunner

from connectors.live.order_store import open_order_store
from qmtl.cli import app
from tests.connectors.data.test_questdb import TcpListener, parse_ilp

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def test_a_live_run_writes_its_bars_returns_and_fills_over_ilp(tmp_path):
    runner = CliRunner()
    data = tmp_path / "data"
    assert runner.invoke(app, ["data", "demo", "--data", str(data), "--bars", "300"]).exit_code == 0
    listener = TcpListener()
    out = tmp_path / "run"
    got = runner.invoke(
        app,
        [
            "run",
            "--mode",
            "live",
            str(EXAMPLES / "sma_cross.py"),
            "--paper",
            "--data",
            str(data),
            "--speed",
            "100/s",
            "--max-bars",
            "200",
            "--out",
            str(out),
            "--sink",
            f"tcp::addr=127.0.0.1:{listener.port};",
        ],
    )
    assert got.exit_code == 0, got.output
    assert listener.done.wait(10)
    lines = parse_ilp(listener.data.decode())
    by = {
        t: [ln for ln in lines if ln[0] == t]
        for t in ("qmtl_run_bars", "qmtl_run_returns", "qmtl_run_fills")
    }
    assert sum(len(v) for v in by.values()) == len(lines)
    table = pq.read_table(out / "bars.parquet").to_pydict()
    assert len(by["qmtl_run_bars"]) == len(table["ts"]) == 200
    for (_, tags, fields, ts), t, s, w, r in zip(
        by["qmtl_run_bars"],
        table["ts"],
        table["symbol"],
        table["weight"],
        table["return"],
        strict=True,
    ):
        assert (ts, tags["symbol"], fields["weight"], fields["return"]) == (t, s, w, r)
    assert len(by["qmtl_run_returns"]) == len(np.unique(table["ts"])) == 100
    fills = open_order_store(str(out / "orders.db")).fills("local", "SmaCross")
    assert len(fills) > 0  # 100 bars a second: the world activates it early
    assert [(f[1]["order_id"], f[2]["qty"], f[2]["price"], f[3]) for f in by["qmtl_run_fills"]] == [
        (f.order_id, f.qty, f.price, f.ts) for f in fills
    ]
