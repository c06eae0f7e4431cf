"""A paper run reports its paper account (from its fills, fees and slippage), apart from the
model's return, and how many bars had their orders held and why; each checked against an
independent reference computed here from the fills and the catalog's bars."""

from __future__ import annotations

import json
import re
import uuid

import pandas as pd
from typer.testing import CliRunner

from qmtl.cli import app
from qmtl.live import LiveOptions, run_live
from tests.e2e.live_helpers import Cross, activate, make_data, world_server, write_catalog


def reference_account(fills, capital: float, data) -> float:
    """The account's return by pandas: cash flows of the fills, positions at the last close."""
    df = pd.DataFrame([f.model_dump() for f in fills])
    cash = capital - (df.qty * df.price).sum() - df.fee.sum()
    pos = df.groupby("symbol").qty.sum()
    last = pd.Series({s: float(b["close"][-1]) for s, b in data.items()})
    return float((cash + (pos * last.reindex(pos.index)).sum()) / capital - 1.0)


def test_a_paper_run_reports_its_paper_account_beside_the_model(tmp_path):
    data = make_data(200)
    write_catalog(tmp_path / "catalog", data)
    with world_server(tmp_path) as url:
        activate(url, "w", "Cross")
        res = run_live(
            Cross,
            LiveOptions(
                world="w",
                url=url,
                paper=True,
                data=tmp_path / "catalog",
                speed="max",
                orders_store=str(tmp_path / f"o-{uuid.uuid4().hex[:6]}.db"),
                fee_bps=5.0,
                slippage_bps=10.0,
            ),
        )
    assert res.paper is not None and len(res.fills) > 10
    assert res.capital == 1_000_000.0
    assert abs(res.paper["return"] - reference_account(res.fills, res.capital, data)) < 1e-12
    assert res.paper["fees"] == sum(f.fee for f in res.fills) > 0
    # slippage against the price of each fill's bar, from the catalog: under the default
    # execution rule (`close`) a fill is at its signal bar's close, as the backtest trades
    closes = {
        s: dict(zip(b["ts"].tolist(), b["close"].tolist(), strict=True)) for s, b in data.items()
    }
    slip = sum(abs(f.qty) * abs(f.price - closes[f.symbol][f.ts]) for f in res.fills)
    assert abs(res.paper["slippage"] - slip) <= 1e-9 * max(1.0, slip)
    # the account differs from the model (orders sized on the world's capital): both are reported
    assert res.paper["return"] != res.metrics["total_return"]
    # active from the first bar: nothing held
    assert (res.held_bars, res.bars_before_active) == (0, 0)
    assert res.gate_bars == res.n_bars


def test_the_summary_says_how_many_bars_ran_before_the_world_activated_it(tmp_path):
    """At --speed max the in-process replay outruns the world: the summary says so."""
    data = make_data(120)
    write_catalog(tmp_path / "catalog", data)
    strategy = tmp_path / "cross.py"
    strategy.write_text(
        "from qmtl import Strategy\n\n\nclass Cross(Strategy):\n"
        "    symbols = ['AAA', 'BBB']\n\n"
        "    def signal(self, bars):\n"
        "        return bars.close.sma(3) > bars.close.sma(8)\n"
    )
    out = CliRunner().invoke(
        app,
        [
            "run",
            "--mode",
            "live",
            str(strategy),
            "--paper",
            "--speed",
            "max",
            "--data",
            str(tmp_path / "catalog"),
            "--out",
            str(tmp_path / "out"),
        ],
    )
    assert out.exit_code == 0, out.output
    text = " ".join(out.output.split())
    model = re.search(r"model return ([+-][0-9.]+)% · paper account ([+-][0-9.]+)%", text)
    assert model, text
    held = re.search(
        r"orders held on (\d+) of (\d+) bars \(([^)]*)\) · "
        r"(first active after (\d+) bars|never active)",
        text,
    )
    assert held, text
    n_held, n_bars = int(held.group(1)), int(held.group(2))
    causes = dict((w, int(n)) for n, w in re.findall(r"(\d+) ([a-z ]+)", held.group(3)))
    assert set(causes) <= {"world not reached yet", "not active yet"}, causes
    n_waiting = sum(causes.values())  # first not reached, then not active: one after the other
    metrics = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert n_bars == metrics["run"]["live_bars"] // 2  # two symbols a bar
    assert n_held == n_waiting >= 1  # the embedded world answers after the first bars
    if held.group(5) is not None:
        assert int(held.group(5)) == n_waiting < n_bars
    assert float(model.group(1)) == round(100 * metrics["metrics"]["total_return"], 2)
