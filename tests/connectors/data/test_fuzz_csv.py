"""The CSV importer fuzzed with hypothesis: random bytes, CSV-ish text, random column orders
and types, huge numbers, byte-order marks and mixed newlines. :func:`import_csv` either
imports (and the catalog then reads back what it said it imported) or raises a
:class:`QmtlError` whose message says where (the file, and a row, line or column when the
fault is in one); never another exception, and after an error the catalog's files are
byte-identical to before (nothing half-written)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

from connectors.data.catalog import Catalog
from connectors.data.csv_import import BarFileError, import_csv
from qmtl.core.errors import QmtlError

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
ROOT = Path(tempfile.mkdtemp(prefix="qmtl-fuzz-csv-"))
CATALOG = Catalog(ROOT / "catalog")
CATALOG.write("X", "1d", {"ts": [86_400 * 10**9 * d for d in (1, 2)],
                          "open": [1.0, 1.0], "high": [2.0, 2.0], "low": [0.5, 0.5],
                          "close": [1.5, 1.5], "volume": [0.0, 0.0]})

TIMES = ["2024-01-02", "2024-01-03T10:00:00", "2024-01-03 10:00:00+02:00", "1704153600",
         "1704153600000", "1704153600000000000", "99999999999999999999", "-5", "", "x",
         "2024-13-45", "1e308", "0", "nan", "2024-01-02T00:00:00Z", "\x00"]
NUMBERS = ["1", "2.5", "0", "-1", "1e308", "1e309", "-1e999", "nan", "inf", "", "abc",
           "99999999999999999999999999", "0x10", "1,5", '"3"', "\x1b[31m", "0.5"]
NAMES = ["date", "Date", "ts", "TS", "timestamp", "time", "datetime", "open", "High", " low ",
         "close", "volume", "Volume", "", "Unnamed: 0", "extra", "open", "close\x00"]
NEWLINES = ["\n", "\r\n", "\r"]


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.name.endswith(".lock")}


def check(raw: bytes, on_bad: str = "raise") -> str:
    """Import ``raw`` and check the outcome's contract; say which outcome it was."""
    path = ROOT / "in.csv"
    path.write_bytes(raw)
    before = snapshot(CATALOG.root)
    try:
        rows, dropped = import_csv(CATALOG, path, "X", "1d", on_bad=on_bad)  # type: ignore[arg-type]
    except QmtlError as exc:
        message = str(exc)
        assert message
        # where: the file, or the symbol with the bar's time (bad bars)
        assert str(path) in message or message.startswith("X"), message
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", message), message  # escaped
        assert snapshot(CATALOG.root) == before
        return "refused"
    assert rows >= 0 and dropped >= 0
    stored = CATALOG.read("X", "1d")
    assert len(stored["ts"]) >= rows
    assert (stored["ts"][1:] > stored["ts"][:-1]).all()
    return "imported"


@st.composite
def csv_text(draw) -> bytes:
    """A CSV with a random header (order, case, duplicates), random cells, a random newline
    per line and an optional BOM, encoded as UTF-8 (or Latin-1)."""
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=8))
    if draw(st.booleans()):  # usually a plausible file: every column, in a random order
        names = draw(st.permutations(["date", "open", "high", "low", "close", "volume"]))
    lines = [",".join(names)]
    good = {"date": None, "open": "10", "high": "12.5", "low": "9e0", "close": "11",
            "volume": "100"}
    for day in range(draw(st.integers(0, 6))):
        if set(names) == set(good) and draw(st.integers(0, 3)):  # a good row, mostly
            good["date"] = f"2030-01-{day + 1:02d}"
            lines.append(",".join(good[n] for n in names))
            continue
        cells = [draw(st.sampled_from(TIMES) if n.strip().lower() in
                      ("date", "ts", "timestamp", "time", "datetime", "", "unnamed: 0")
                      else st.sampled_from(NUMBERS)) for n in names]
        if draw(st.integers(0, 9)) == 0:
            cells = cells[:-1] if cells else ["1"]
        lines.append(",".join(cells))
    text = "".join(line + draw(st.sampled_from(NEWLINES)) for line in lines)
    bom = draw(st.sampled_from(["", "\ufeff"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8", "latin-1", "utf-16"]))
    return (bom + text).encode(encoding, errors="replace")


@FUZZ
@given(csv_text(), st.sampled_from(["raise", "drop"]))
def test_csv_ish_files(raw, on_bad):
    check(raw, on_bad)


@FUZZ
@given(st.binary(max_size=400))
def test_random_bytes(raw):
    check(raw)


@FUZZ
@given(st.text(alphabet=st.sampled_from(list('0123456789,.-:"eE \n\r\t\x00\ufeffTZdateopn')),
               max_size=200))
def test_random_csv_ish_text(text):
    check(b"date,open,high,low,close\n" + text.encode())


def test_a_good_file_after_the_fuzz_still_imports():
    check(b"\xef\xbb\xbfDate,Open,High,Low,Close\r\n2024-01-02,1,2,0.5,1.5\r\n")
    stored = CATALOG.read("X", "1d")
    assert stored["close"][stored["ts"] == 1_704_153_600 * 10**9].tolist() == [1.5]


@pytest.mark.parametrize("outcome", ["imported", "refused"])
def test_the_fuzz_reaches_both_outcomes(outcome):
    """The generator is worth its examples: it makes files the importer takes and files it
    refuses (found here, whatever order or worker the fuzz tests ran in)."""
    find(csv_text(), lambda raw: check(raw) == outcome,
         settings=settings(max_examples=500, deadline=None, database=None,
                           suppress_health_check=list(HealthCheck)))


def test_found_by_the_fuzz_a_header_not_in_utf8_is_a_bar_file_error(tmp_path):
    """Was a UnicodeDecodeError from pyarrow's lazily decoded column names."""
    path = tmp_path / "latin.csv"
    path.write_bytes("Dat\xe9,open,high,low,close\n2024-01-02,1,2,0.5,1.5\n".encode("latin-1"))
    with pytest.raises(BarFileError, match=r"latin\.csv: line 1: the header is not UTF-8"):
        import_csv(CATALOG, path, "X", "1d")


def test_found_by_the_fuzz_a_header_without_rows_says_so(tmp_path):
    """Was "column 'date' has type null, expected dates or times"."""
    path = tmp_path / "empty.csv"
    path.write_text("date,open,high,low,close\n")
    with pytest.raises(BarFileError, match="no bars: the file has a header and no rows"):
        import_csv(CATALOG, path, "X", "1d")
