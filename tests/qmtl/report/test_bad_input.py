"""A run folder whose rows or metrics are not numbers: `qmtl report` and `qmtl compare` say
which column and row (or which metric) is wrong, exit 1, and write nothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from qmtl.cli import app
from qmtl.core.times import format_ts

runner = CliRunner()


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def spoil(folder: Path, column: str, rows: dict[int, float | None]) -> pa.Table:
    """Set ``column`` of ``bars.parquet`` at ``rows`` (None: null); return the old table."""
    table = pq.read_table(folder / "bars.parquet")
    values = table.column(column).to_pylist()
    for row, value in rows.items():
        values[row] = value
    i = table.column_names.index(column)
    pq.write_table(table.set_column(i, column, pa.array(values, pa.float64())),
                   folder / "bars.parquet")
    return table


@pytest.mark.parametrize(("column", "bad", "shown"), [
    ("return", float("nan"), "nan"), ("return", float("inf"), "inf"),
    ("equity", float("-inf"), "-inf"), ("weight", float("nan"), "nan"),
])
def test_a_non_finite_value_names_its_column_and_row(result, tmp_path, column, bad, shown):
    folder = result.write(tmp_path / "run")
    table = spoil(folder, column, {37: bad, 90: bad})
    got = invoke("report", folder)
    assert got.exit_code == 1, got.output
    text = " ".join(got.output.split())
    when = format_ts(table.column("ts")[37].as_py())
    symbol = table.column("symbol")[37].as_py()
    assert (f"bars.parquet: the column {column} holds {shown} at row 37 (ts {when}, symbol "
            f"{symbol}) (2 rows are NaN or infinite)") in text
    assert "internal error" not in text and "Traceback" not in text
    assert not (folder / "report.html").exists()
    got = invoke("compare", folder, folder)
    assert got.exit_code == 1 and f"the column {column} holds {shown} at row 37" in " ".join(
        got.output.split())


def test_a_null_value_names_its_column(result, tmp_path):
    folder = result.write(tmp_path / "run")
    spoil(folder, "return", {5: None})
    got = invoke("report", folder)
    assert got.exit_code == 1
    assert "the column return is empty (null) in 1 rows, first at row 5" in " ".join(
        got.output.split())
    assert not (folder / "report.html").exists()


@pytest.mark.parametrize("value", ["high", "1.2", True, [1.0], {"a": 1}])
def test_a_metric_that_is_not_a_number_names_the_metric(result, tmp_path, value):
    folder = result.write(tmp_path / "run")
    doc = json.loads((folder / "metrics.json").read_text())
    doc["metrics"]["sharpe"] = value
    (folder / "metrics.json").write_text(json.dumps(doc))
    got = invoke("report", folder)
    assert got.exit_code == 1, got.output
    text = " ".join(got.output.split())
    assert (f"metrics.json: the metric sharpe is {value!r} (a {type(value).__name__}), not a "
            "number or null") in text
    assert "internal error" not in text
    assert not (folder / "report.html").exists()


def test_nan_closes_are_allowed_and_a_null_metric_reads_as_a_dash(result, tmp_path):
    folder = result.write(tmp_path / "run")
    spoil(folder, "close", {3: float("nan")})
    doc = json.loads((folder / "metrics.json").read_text())
    doc["metrics"]["calmar"] = None
    (folder / "metrics.json").write_text(json.dumps(doc))
    got = invoke("report", folder)
    assert got.exit_code == 0, got.output
    page = (folder / "report.html").read_text()
    assert 'data-metric="calmar" data-value="null"><td>calmar</td><td class="num">-</td>' in page
    assert np.isfinite(pq.read_table(folder / "bars.parquet").column("return").to_numpy()).all()
