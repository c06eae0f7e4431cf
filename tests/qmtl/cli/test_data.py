"""``qmtl data import | backfill | check | ls`` and ``qmtl run --origin`` as a user drives
them; every ``--help`` of the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import typer
from rich.text import Text
from typer.testing import CliRunner

from connectors.data.catalog import Catalog
from connectors.data.synthetic import generate_bars
from qmtl.cli import app
from qmtl.core.times import format_ts
from tests.connectors.conftest import write_origin_file

runner = CliRunner()
FULL = generate_bars(400, interval="1d", start="2022-01-01", seed=21)
T = FULL["ts"]
DAY = 86_400 * 10**9


def invoke(*args: str):
    return runner.invoke(app, list(args))


def commands(cmd: Any, path: list[str]) -> Iterator[tuple[list[str], Any]]:
    """Every command and subcommand under ``cmd`` with its argv path (a lazy command is
    loaded by ``get_command``)."""
    yield path, cmd
    if hasattr(cmd, "list_commands"):
        ctx = cmd.context_class(cmd)
        for name in cmd.list_commands(ctx):
            yield from commands(cmd.get_command(ctx, name), [*path, name])


def test_every_help_renders_as_written():
    """`qmtl data import --help` crashed on `close[/volume]` (rich markup): every command's
    help renders, and no help text loses a bracketed part to markup."""
    found = list(commands(typer.main.get_command(app), []))
    assert ["data", "import"] in [p for p, _ in found] and len(found) > 10
    for path, cmd in found:
        got = invoke(*path, "--help")
        assert got.exit_code == 0 and got.exception is None, (path, got.output, got.exception)
        for text in [cmd.help or "", *(getattr(p, "help", None) or "" for p in cmd.params)]:
            assert Text.from_markup(text).plain == text, (path, text)


@pytest.fixture
def setup(tmp_path):
    """A catalog with AAPL bars 100..299 and an origin folder with all 400 of them."""
    catalog = Catalog(tmp_path / "catalog")
    catalog.write("AAPL", "1d", {k: v[100:300] for k, v in FULL.items()})
    write_origin_file(tmp_path / "origin", "AAPL", "1d", FULL)
    return tmp_path / "catalog", tmp_path / "origin"


def test_backfill_fetches_the_missing_ranges_once(setup):
    catalog, origin = setup
    args = ["data", "backfill", "--symbols", "AAPL", "--interval", "1d",
            "--start", format_ts(int(T[0])), "--end", format_ts(int(T[-1])),
            "--origin", f"folder:{origin}", "--data", str(catalog)]
    got = invoke(*args)
    assert got.exit_code == 0, got.output
    assert "folder:" in got.output and "100" in got.output  # 100 bars before, 100 after
    assert len(Catalog(catalog).read("AAPL", "1d")["ts"]) == 400
    again = invoke(*args)
    assert again.exit_code == 0 and "nothing to fetch" in again.output


def test_backfill_bad_input(setup):
    catalog, origin = setup
    base = ["data", "backfill", "--data", str(catalog), "--start", "2022-01-01"]
    cases = [
        (["--symbols", "AAPL"], "nothing to backfill from"),
        (["--symbols", "AAPL", "--origin", f"folder:{origin}", "--interval", "2d"],
         "unknown interval '2d'"),
        (["--symbols", "ZZZ", "--origin", f"folder:{origin}"],
         "unknown symbol 'ZZZ' at interval 1d; looked in: cache"),
        (["--symbols", "AAPL", "--origin", "smtp:x"], "unknown origin 'smtp:x'"),
        (["--symbols", "AAPL", "--origin", f"folder:{origin}", "--end", "2021-01-01"],
         "empty range"),
    ]
    for extra, message in cases:
        got = invoke(*base, *extra)
        assert got.exit_code == 1, (extra, got.output)
        assert message in got.output, (extra, got.output)
        assert "Traceback" not in got.output
    assert len(Catalog(catalog).read("AAPL", "1d")["ts"]) == 200  # nothing written


def test_ls_shows_coverage(setup):
    catalog, origin = setup
    invoke("data", "backfill", "--symbols", "AAPL", "--start", format_ts(int(T[350])),
           "--end", format_ts(int(T[360])), "--origin", f"folder:{origin}",
           "--data", str(catalog))
    got = invoke("data", "ls", "--data", str(catalog))
    assert got.exit_code == 0, got.output
    assert "AAPL" in got.output and "211" in got.output  # 200 + 11 backfilled
    assert got.output.count(" .. ") == 2  # two covered ranges: a gap between them
    empty = invoke("data", "ls", "--data", str(catalog.parent / "none"))
    assert "empty" in empty.output


def write_csv(path, bars):
    lines = ["timestamp,open,high,low,close,volume"] + [
        ",".join([str(int(t)), *(repr(float(x)) for x in row)])
        for t, *row in zip(bars["ts"], bars["open"], bars["high"], bars["low"], bars["close"],
                           bars["volume"], strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")


def damaged():
    bars = {k: v.copy() for k, v in generate_bars(300, interval="1h", start="2024-01-01",
                                                  seed=5).items()}
    bars["close"][10] = np.nan
    bars["high"][20] = bars["low"][20] * 0.9
    bars["open"][30] = -2.0
    bars["volume"][40] = -1.0
    bars = {k: np.insert(v, 51, v[50]) for k, v in bars.items()}      # duplicate of row 50
    bars["ts"][60], bars["ts"][61] = bars["ts"][61], bars["ts"][60]   # out of order
    bars = {k: np.delete(v, np.s_[100:104]) for k, v in bars.items()}  # 4 bars missing
    return bars


def test_check_lists_each_injected_defect_and_fix_repairs(tmp_path):
    path = tmp_path / "prices.csv"
    bars = damaged()
    write_csv(path, bars)
    got = invoke("data", "check", str(path), "--interval", "1h")
    assert got.exit_code == 1
    out = got.output.replace("\n", " ")
    for kind in ("nan", "ohlc", "non_positive", "negative_volume", "duplicate", "out_of_order",
                 "gap"):
        assert kind in out, kind
    assert "7 issues" in out
    assert format_ts(int(bars["ts"][10])) in out
    fixed = invoke("data", "check", str(path), "--interval", "1h", "--fix")
    assert "fixed: dropped 1 rows with NaN" in fixed.output
    assert "fixed: sorted the rows by time" in fixed.output
    assert "fixed: widened high/low of 1 bars" in fixed.output
    copy = tmp_path / "prices.fixed.csv"
    assert copy.is_file() and path.read_text() != copy.read_text()
    assert fixed.exit_code == 0  # only gaps remain, and --fix says to backfill them
    assert "gaps remain" in fixed.output
    again = invoke("data", "check", str(copy), "--interval", "1h")
    assert "gap" in again.output and "ohlc" not in again.output and "duplicate" not in again.output


def test_check_clean_file_and_catalog(tmp_path):
    path = tmp_path / "clean.parquet"
    pq.write_table(pa.table(generate_bars(100, interval="1m", seed=2)), path)
    got = invoke("data", "check", str(path), "--interval", "1m")
    assert got.exit_code == 0 and "100 bars, no issues" in got.output
    cat = tmp_path / "cat"
    assert invoke("data", "demo", "--data", str(cat), "--bars", "50").exit_code == 0
    got = invoke("data", "check", "--data", str(cat))
    assert got.exit_code == 0 and got.output.count("no issues") == 4


def test_check_catalog_fix_keeps_the_original(tmp_path):
    cat = Catalog(tmp_path / "cat")
    bars = generate_bars(50, interval="1d", seed=3)
    bars["high"][7] = bars["low"][7] * 0.5  # OHLC inconsistent: validation lets it through
    cat.write("X", "1d", bars)
    got = invoke("data", "check", "--data", str(cat.root), "--fix")
    assert got.exit_code == 0, got.output
    assert "widened high/low of 1 bars" in got.output and "original kept as" in got.output
    assert len(list(cat.path("X", "1d").parent.glob("bars.orig-*.parquet"))) == 1
    assert invoke("data", "check", "--data", str(cat.root)).exit_code == 0
    assert cat.symbols() == ["X"]


def test_fix_and_ls_of_a_symbol_stored_in_several_parts(tmp_path):
    """A long history is a folder of parts: ls sizes them all, --fix keeps every bar."""
    cat = Catalog(tmp_path / "cat")
    bars = generate_bars(400_000, interval="1m", seed=4)
    bars["high"][350_000] = bars["low"][350_000] * 0.5  # in the last part
    cat.write("X", "1m", bars)
    assert len(cat.parts("X", "1m")) > 1
    listed = invoke("data", "ls", "--data", str(cat.root))
    assert f"{cat.nbytes('X', '1m') / 2**20:.1f} MiB" in listed.output
    got = invoke("data", "check", "--data", str(cat.root), "--fix")
    assert got.exit_code == 0, got.output
    (kept,) = cat.folder("X", "1m").glob("bars.orig-*.parquet")
    original = pq.read_table(kept)
    assert original.num_rows == 400_000
    np.testing.assert_array_equal(original.column("high").to_numpy(), bars["high"])
    assert cat.read("X", "1m")["high"][350_000] >= bars["open"][350_000]


def test_check_names_a_corrupt_file(tmp_path):
    cat = Catalog(tmp_path / "cat")
    cat.write("X", "1d", generate_bars(5, seed=1))
    cat.path("X", "1d").write_bytes(b"not parquet at all")
    got = invoke("data", "check", "--data", str(cat.root))
    assert got.exit_code == 1
    assert "corrupt catalog file" in got.output
    assert cat.path("X", "1d").name in got.output.replace("\n", "")
    bad = tmp_path / "bad.parquet"
    bad.write_bytes(b"PAR1garbage")
    got = invoke("data", "check", str(bad), "--interval", "1d")
    assert got.exit_code == 1 and f"corrupt Parquet file {bad}" in got.output.replace("\n", "")


SNIPPET = """
from qmtl import Strategy

class Cross(Strategy):
    symbols = ["AAPL"]
    def signal(self, bars):
        return bars.close.sma(5) > bars.close.sma(20)
"""


def test_run_backfills_the_missing_part_once_and_records_the_data(setup, tmp_path):
    catalog, origin = setup
    strat = tmp_path / "cross.py"
    strat.write_text(SNIPPET)
    out = tmp_path / "run"
    args = ["run", str(strat), "--data", str(catalog), "--origin", f"folder:{origin}",
            "--start", format_ts(int(T[0])), "--end", format_ts(int(T[-1]))]
    got = invoke(*args, "--out", str(out))
    assert got.exit_code == 0, got.output
    # before and after what was stored, and the strategy's look-back before --start (the
    # origin has nothing there: the run starts cold, and nothing is asked for again)
    assert got.output.count("fetched folder:") == 3
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["metrics"]["n_bars"] == 400
    assert len(doc["data"]["fingerprint"]) == 64
    assert [(f["start"], f["rows"]) for f in doc["data"]["fetched"]] == [
        (int(T[0]), 100), (int(T[299]) + 1, 100), (int(T[0]) - 1 - 4 * 29 * DAY, 0)]
    again = invoke(*args, "--out", str(tmp_path / "run2"))
    assert again.exit_code == 0 and "fetched" not in again.output
    doc2 = json.loads((tmp_path / "run2" / "metrics.json").read_text())
    assert doc2["data"]["fingerprint"] == doc["data"]["fingerprint"]
    assert doc2["data"]["fetched"] == []


def test_run_over_a_minute_catalog_at_one_hour(tmp_path):
    cat = tmp_path / "cat"
    assert invoke("data", "demo", "--data", str(cat), "--interval", "1m", "--bars", "6000",
                  "--symbols", "BTC").exit_code == 0
    strat = tmp_path / "hourly.py"
    strat.write_text(SNIPPET.replace('["AAPL"]', '["BTC"]\n    interval = "1h"'))
    out = tmp_path / "run"
    got = invoke("run", str(strat), "--data", str(cat), "--out", str(out))
    assert got.exit_code == 0, got.output
    doc = json.loads((out / "metrics.json").read_text())
    assert doc["interval"] == "1h" and doc["metrics"]["n_bars"] == 99  # 6000 min = 100 h


GOOG = Path(pytest.importorskip("backtesting").__file__).parent / "test" / "GOOG.csv"


def test_import_a_pandas_csv_with_an_unnamed_date_index(tmp_path):
    """GOOG.csv (written by DataFrame.to_csv: the first column is the unnamed date index)."""
    pd = pytest.importorskip("pandas")
    got = invoke("data", "import", str(GOOG), "--symbol", "GOOG", "--data", str(tmp_path))
    assert got.exit_code == 0, got.output
    assert "imported 2148 1d bars of GOOG" in got.output
    ref = pd.read_csv(GOOG, index_col=0, parse_dates=True)  # the independent reader
    bars = Catalog(tmp_path).read("GOOG", "1d")
    assert bars["ts"].tolist() == ref.index.as_unit("ns").asi8.tolist()
    for col in ("Open", "High", "Low", "Close", "Volume"):
        assert np.array_equal(bars[col.lower()], ref[col].to_numpy(dtype=float)), col


def test_import_time_column_option(tmp_path):
    path = tmp_path / "bars.csv"
    path.write_text("Day,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n2024-01-03,1,2,0.5,1.5\n")
    base = ["data", "import", str(path), "--symbol", "X", "--data", str(tmp_path / "cat")]
    got = invoke(*base)
    assert got.exit_code == 1 and "missing time column" in got.output
    assert "--time-column" in got.output and "'Day'" in got.output
    got = invoke(*base, "--time-column", "when")
    assert got.exit_code == 1 and "no column 'when'" in got.output
    got = invoke(*base, "--time-column", "day")
    assert got.exit_code == 0, got.output
    assert Catalog(tmp_path / "cat").read("X", "1d")["ts"].tolist() == [
        1704153600 * 10**9, 1704240000 * 10**9]


def test_a_broken_csv_is_shown_escaped_and_nothing_is_written(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"date,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n"
                     b"2024-01-03,1,\x1b[31mRED\x1b]0;title\x07,\xff\n")
    cat = tmp_path / "cat"
    got = invoke("data", "import", str(path), "--symbol", "X", "--data", str(cat))
    assert got.exit_code == 1 and "Traceback" not in got.output
    assert "\x1b" not in got.output and "\x07" not in got.output  # no raw control bytes
    assert "line 3: expected 5 columns, got 4" in got.output
    assert "\\x1b[31mRED\\x1b]0;title\\x07,\\xff" in got.output  # escaped, as typed
    path.write_text("date,open,high,low,close\n2024-01-02,[/x],2,0.5,1.5\n")  # rich markup
    got = invoke("data", "import", str(path), "--symbol", "X", "--data", str(cat))
    assert got.exit_code == 1 and isinstance(got.exception, SystemExit)  # not MarkupError
    assert "column 'open', row 1: '[/x]' is not a number" in got.output
    assert not (cat / "X").exists() and not Catalog(cat).symbols()


def test_check_with_an_exchange_calendar(tmp_path):
    """GOOG.csv has every NYSE session from 2004-08-19 to 2013-03-01: the XNYS calendar finds
    no gap; weekdays reports each NYSE holiday (and the closures of 2007-01-02 and Hurricane
    Sandy) as one."""
    pytest.importorskip("exchange_calendars")
    xnys = invoke("data", "check", str(GOOG), "--interval", "1d", "--calendar", "xnys")
    assert xnys.exit_code == 0 and "2,148 bars, no issues" in xnys.output, xnys.output
    weekdays = invoke("data", "check", str(GOOG), "--interval", "1d", "--calendar", "weekdays",
                      "--limit", "200")
    out = weekdays.output.replace("\n", " ")
    assert weekdays.exit_code == 1 and "77 issues (77 gap)" in out
    for closed in ("2004-11-25", "2007-01-02", "2012-10-29", "2012-10-30", "2012-12-25"):
        assert f"{closed}T00:00:00Z" in out, closed
    unknown = invoke("data", "check", str(GOOG), "--interval", "1d", "--calendar", "LUNAR")
    assert unknown.exit_code == 1 and "unknown calendar 'LUNAR'" in unknown.output
    assert all(n in unknown.output for n in ("XNYS", "XLON", "XTKS", "24/7", "weekdays"))
    both = invoke("data", "check", str(GOOG), "--interval", "1d", "--calendar", "XNYS",
                  "--session", "09:30-16:00")
    assert both.exit_code == 1 and "has its own session hours" in both.output
    assert "XNYS" in invoke("data", "check", "--help").output
    catalog = invoke("data", "check", "--data", str(tmp_path), "--time-column", "Date")
    assert catalog.exit_code == 1 and "--time-column goes with files" in catalog.output


def test_check_rows_are_counted_from_one(tmp_path):
    """The row a check names is the bar's position from 1: line row + 1 of the CSV."""
    path = tmp_path / "prices.csv"
    write_csv(path, damaged())
    got = invoke("data", "check", str(path), "--interval", "1h")
    assert "row 1 is the first bar" in got.output.replace("\n", " ")
    rows = {cells[1]: cells[3] for cells in (line.split("│") for line in got.output.splitlines())
            if len(cells) > 4 and cells[1].strip()}
    rows = {k.strip(): int(v) for k, v in rows.items() if v.strip().isdigit()}
    lines = path.read_text().splitlines()
    assert "nan" in lines[rows["nan"]]  # lines[row] is line row + 1: the damaged bar
    assert lines[rows["duplicate"]] == lines[rows["duplicate"] + 1]  # its twin follows
    assert lines[rows["non_positive"]].split(",")[1] == "-2.0"
