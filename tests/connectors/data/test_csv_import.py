"""Reading bar files: which column is the time, what an error says (where, and escaped), and
that a repaired copy reads back as written."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from connectors.data.catalog import Catalog
from connectors.data.csv_import import (
    BarFileError,
    bars_from_table,
    import_csv,
    printable,
    read_bars_csv,
    read_bars_file,
    write_bars_file,
)
from connectors.data.synthetic import generate_bars
from qmtl.core.errors import QmtlError
from qmtl.core.times import parse_time

ROWS = "2024-01-02,1,2,0.5,1.5,10\n2024-01-03,1.5,2.5,1,2,20\n"
DAYS = [parse_time("2024-01-02"), parse_time("2024-01-03")]


def write(tmp_path, text: str | bytes, name: str = "bars.csv"):
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


@pytest.mark.parametrize("header", [",Open,High,Low,Close,Volume",           # to_csv
                                    "Unnamed: 0,Open,High,Low,Close,Volume",  # read back
                                    " ,open,high,low,close,volume"])
def test_an_unnamed_first_column_is_the_time(tmp_path, header):
    bars = read_bars_csv(write(tmp_path, f"{header}\n{ROWS}"))
    assert bars["ts"].tolist() == DAYS
    assert bars["close"].tolist() == [1.5, 2.0] and bars["volume"].tolist() == [10.0, 20.0]


def test_a_named_time_column_wins_over_an_unnamed_first_one(tmp_path):
    path = write(tmp_path, ",date,open,high,low,close\n0,2024-01-02,1,2,0.5,1.5\n")
    assert read_bars_csv(path)["ts"].tolist() == DAYS[:1]


def test_an_unnamed_row_number_column_is_not_taken_for_times(tmp_path):
    path = write(tmp_path, ",open,high,low,close\n0,1,2,0.5,1.5\n1,1,2,0.5,1.5\n")
    with pytest.raises(BarFileError, match="row numbers 0, 1, 2"):
        read_bars_csv(path)
    # epoch seconds in an unnamed column are times
    path = write(tmp_path, ",open,high,low,close\n1704153600,1,2,0.5,1.5\n")
    assert read_bars_csv(path)["ts"].tolist() == DAYS[:1]


def test_time_column_by_name(tmp_path):
    path = write(tmp_path, f"When,Open,High,Low,Close,Volume\n{ROWS}")
    with pytest.raises(BarFileError, match=r"missing time column .*found: 'When', 'Open'"):
        read_bars_csv(path)
    assert read_bars_csv(path, time_column=" when ")["ts"].tolist() == DAYS
    assert read_bars_file(path, time_column="WHEN")["ts"].tolist() == DAYS
    with pytest.raises(BarFileError, match="no column 'at'"):
        read_bars_csv(path, time_column="at")
    # a column that is not the default may be chosen over one that is
    two = write(tmp_path, "date,settled,open,high,low,close\n2024-01-01,2024-01-02,1,2,0.5,1\n")
    assert read_bars_csv(two)["ts"].tolist() == [parse_time("2024-01-01")]
    assert read_bars_csv(two, time_column="settled")["ts"].tolist() == DAYS[:1]


def test_errors_say_where(tmp_path):
    cases = [
        ("date,open,high,low,close\n2024-01-02,1,2,0.5,1.5\nsoon,1,2,0.5,1.5\n",
         "column 'date', row 2: cannot read 'soon'"),
        ("date,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n,1,2,0.5,1.5\n",
         "column 'date', row 2: no time"),
        ("date,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n2024-01-03,1,x2,0.5,1.5\n",
         "column 'high', row 2: 'x2' is not a number"),
        ("date,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n\n2024-01-03,1,2\n",
         "line 4: expected 5 columns, got 3 in '2024-01-03,1,2'"),
        ("date,open,high,low\n2024-01-02,1,2,0.5\n", "missing column 'close'"),
        ("date,open,high,low,close\n" + "2024-01-02,1,2,0.5,1.5\n" * 999
         + "2024-01-03,1,2,0.5,1_5\n",
         "column 'close', row 1000: '1_5' is not a number"),
    ]
    for text, message in cases:
        path = write(tmp_path, text)
        with pytest.raises(BarFileError) as err:
            read_bars_csv(path)
        assert str(err.value).startswith(f"{path}: "), err.value
        assert message in str(err.value), (message, str(err.value))
        assert isinstance(err.value, QmtlError) and isinstance(err.value, ValueError)


def test_what_an_error_quotes_is_escaped(tmp_path):
    raw = b"2024-01-03,\x1b[2J\x1b]0;x\x07,\xff\xfe\x00\n"
    path = write(tmp_path, b"date,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n" + raw)
    with pytest.raises(BarFileError) as err:
        read_bars_csv(path)
    text = str(err.value)
    assert text.isprintable(), text
    assert "line 3: expected 5 columns, got 3 in " in text
    assert r"'2024-01-03,\x1b[2J\x1b]0;x\x07,\xff\xfe\x00'" in text  # the line's bytes
    path = write(tmp_path, "date,open,high,low,close\n2024-01-02\x1b[31m,1,2,0.5,1.5\n")
    with pytest.raises(BarFileError, match=r"row 1: cannot read '2024-01-02\\x1b\[31m'"):
        read_bars_csv(path)
    weird = write(tmp_path, f"date,open,high,low,close\n{ROWS}", name="a\x1bb.csv")
    with pytest.raises(BarFileError) as err:
        read_bars_csv(weird, time_column="nope")
    assert "a\\x1bb.csv" in str(err.value) and str(err.value).isprintable()


def test_printable_keeps_text_and_escapes_controls():
    assert printable("Prix: 1,5 € — 東京") == "Prix: 1,5 € — 東京"
    assert printable("a\tb\r\n\x1b\x7f\x9b") == "a\\tb\\r\\n\\x1b\\x7f\\x9b"


def test_files_that_are_not_there_or_not_bars(tmp_path):
    with pytest.raises(BarFileError, match="CSV file not found"):
        read_bars_csv(tmp_path / "none.csv")
    bad = write(tmp_path, b"PAR1 not really", name="x.parquet")
    with pytest.raises(BarFileError, match=f"corrupt Parquet file {bad}"):
        read_bars_file(bad)
    with pytest.raises(BarFileError, match="has type double, expected dates or times"):
        bars_from_table(pa.table({"date": [1.5], "open": [1.0], "high": [1.0], "low": [1.0],
                                  "close": [1.0]}), "t.parquet")
    with pytest.raises(BarFileError, match="'open' has type list<item: double>, expected num"):
        bars_from_table(pa.table({"date": [1], "open": [[1.0]], "high": [1.0], "low": [1.0],
                                  "close": [1.0]}), "t.parquet")


def test_import_writes_nothing_when_a_row_is_bad(tmp_path):
    catalog = Catalog(tmp_path / "cat")
    path = write(tmp_path, "date,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n"
                           "2024-01-03,1,2,0.5,-1\n")
    with pytest.raises(ValueError, match="X"):
        import_csv(catalog, path, "X", "1d")
    assert catalog.symbols() == []
    assert import_csv(catalog, path, "X", "1d", on_bad="drop") == (1, 1)
    path = write(tmp_path, f"day,open,high,low,close,volume\n{ROWS}")
    assert import_csv(catalog, path, "Y", "1d", time_column="day") == (2, 0)
    assert catalog.read("Y", "1d")["ts"].tolist() == DAYS


@pytest.mark.parametrize("name", ["copy.csv", "copy.parquet"])
def test_a_written_file_reads_back_the_same(tmp_path, name):
    bars = generate_bars(50, interval="1m", seed=4)
    dest = tmp_path / name
    write_bars_file(bars, dest)
    back = read_bars_file(dest)
    assert back["ts"].tolist() == bars["ts"].tolist()
    for col in ("open", "high", "low", "close", "volume"):
        assert np.array_equal(back[col], bars[col]), col  # shortest round-trip floats
    assert [p.name for p in tmp_path.iterdir()] == [name]  # no temporary left behind


def test_a_written_csv_keeps_sub_second_times(tmp_path):
    bars = generate_bars(3, interval="1m", seed=4)
    bars["ts"] = bars["ts"] + 1  # one nanosecond past the minute: ISO seconds would lose it
    write_bars_file(bars, tmp_path / "x.csv")
    assert read_bars_file(tmp_path / "x.csv")["ts"].tolist() == bars["ts"].tolist()
