"""`qmtl data check` as `data import`: a file's interval defaults to 1d; gaps that may be a
market's closed days suggest `--calendar`; FX (24x5) and crypto (24/7) calendars; a mistyped
symbol gets a "did you mean"."""

from __future__ import annotations

import numpy as np
from typer.testing import CliRunner

from connectors.data.calendars import Calendar
from connectors.data.catalog import Catalog
from connectors.data.synthetic import generate_bars
from qmtl.core.times import parse_time

runner = CliRunner()
H = 3_600 * 10**9


def invoke(*args):
    from qmtl.cli import app

    return runner.invoke(app, [str(a) for a in args], env={"COLUMNS": "200"})


def write_csv(path, bars) -> None:
    cols = ("ts", "open", "high", "low", "close", "volume")
    lines = ["timestamp," + ",".join(cols[1:])]
    lines += [",".join(str(bars[c][i]) for c in cols) for i in range(len(bars["ts"]))]
    path.write_text("\n".join(lines) + "\n")


def with_ts(ts: np.ndarray, seed: int = 1) -> dict:
    bars = generate_bars(len(ts), interval="1h", seed=seed)
    return {**bars, "ts": ts.astype(np.int64)}


def test_check_of_a_file_defaults_to_daily_bars_as_import_does(tmp_path):
    path = tmp_path / "d.csv"
    write_csv(path, generate_bars(30, interval="1d", start="2024-01-01", seed=2))
    got = invoke("data", "check", path, "--calendar", "24/7")
    assert got.exit_code == 0, got.output
    assert "30 bars, no issues" in got.output


def test_gaps_on_holidays_suggest_a_calendar(tmp_path):
    days = Calendar.parse("weekdays").expected(
        parse_time("2024-06-03"), parse_time("2024-07-31"), 24 * H
    )
    days = days[days != parse_time("2024-07-04")]  # Independence Day: NYSE is closed
    path = tmp_path / "spy.csv"
    write_csv(path, with_ts(days))
    got = invoke("data", "check", path)
    assert got.exit_code == 1
    assert "1 gap" in got.output and "--calendar XNYS" in got.output
    assert "fx (24x5)" in got.output and "crypto (24/7)" in got.output


def test_fx_and_crypto_calendars(tmp_path):
    first, last = parse_time("2024-07-01"), parse_time("2024-07-31")
    fx = Calendar.parse("fx").expected(first, last, H)
    hours = (fx - fx[0]) // H
    assert not np.any(np.diff(hours) > 1 + 48)  # at most the weekend is closed
    assert len(fx) == len(np.arange(first, last + 1, H)) - 4 * 48  # 4 weekends of 48 h
    path = tmp_path / "eurusd.csv"
    write_csv(path, with_ts(fx))
    ok = invoke("data", "check", path, "--interval", "1h", "--calendar", "fx")
    assert ok.exit_code == 0, ok.output
    assert "no issues" in ok.output
    weekend = invoke("data", "check", path, "--interval", "1h", "--calendar", "crypto")
    assert weekend.exit_code == 1 and "gap" in weekend.output
    assert Calendar.parse("crypto") == Calendar.parse("24/7")
    assert Calendar.parse("24x5").kind == "fx"


def test_a_mistyped_symbol_gets_a_did_you_mean(tmp_path):
    cat = Catalog(tmp_path / "cat")
    for s in ("GOOG", "AAPL"):
        cat.write(s, "1d", generate_bars(5, interval="1d", seed=1))
    got = invoke("data", "check", "--symbols", "GOOGL", "--data", cat.root)
    assert got.exit_code == 1 and "did you mean 'GOOG'?" in got.output
    strategy = tmp_path / "s.py"
    strategy.write_text(
        "from qmtl import Strategy\nclass S(Strategy):\n    symbols = ['GOOGL']\n"
        "    def signal(self, bars):\n        return bars.close > 0\n"
    )
    run = invoke(
        "run", "--mode", "backtest", strategy, "--data", cat.root, "--out", tmp_path / "run"
    )
    assert run.exit_code == 1 and "did you mean 'GOOG'?" in run.output, run.output
