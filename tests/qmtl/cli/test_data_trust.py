"""The CLI over a catalog it cannot trust or write: a manifest pointing outside its folder, a
manifest that disagrees with its parts, a missing part, a read-only catalog; and ``--out``
onto a run's own files."""

from __future__ import annotations

import json
import os
import shutil
import stat
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connectors.data.catalog import Catalog
from connectors.data.synthetic import generate_bars
from qmtl.cli import app

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
BARS = generate_bars(600, interval="1d", start="2020-01-01", seed=3)
runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, [str(a) for a in args])


def edit_manifest(cat: Catalog, symbol: str, change) -> None:
    path = cat.folder(symbol, "1d") / "_manifest.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


def write_csv(path: Path, bars) -> None:
    rows = ["timestamp,open,high,low,close,volume"]
    for i in range(len(bars["ts"])):
        rows.append(
            ",".join(str(bars[c][i]) for c in ("ts", "open", "high", "low", "close", "volume"))
        )
    path.write_text("\n".join(rows) + "\n")


@pytest.mark.parametrize("absolute", [False, True])
def test_import_never_deletes_a_file_a_manifest_names_outside_the_catalog(tmp_path, absolute):
    cat = Catalog(tmp_path / "cat")
    cat.write("A", "1d", BARS)
    victim = tmp_path / "victim" / "v1.parquet"
    victim.parent.mkdir()
    shutil.copy(cat.path("A", "1d"), victim)
    name = str(victim) if absolute else "../../../victim/v1.parquet"
    edit_manifest(cat, "A", lambda doc: doc["parts"][0].update(file=name))
    csv = tmp_path / "more.csv"
    write_csv(csv, generate_bars(5, interval="1d", start="2030-01-01", seed=1))
    got = invoke("data", "import", csv, "--symbol", "A", "--data", cat.root)
    assert got.exit_code == 1, got.output
    assert "corrupt catalog manifest" in got.output and "Traceback" not in got.output
    assert victim.is_file()
    check = invoke("data", "check", "--data", cat.root)
    assert check.exit_code == 1 and "not a Parquet file of the folder" in check.output


def test_check_reports_a_manifest_that_disagrees_with_its_part(tmp_path):
    """An edited `last` cut a backtest to 101 of 600 bars while check said "no issues"."""
    cat = Catalog(tmp_path / "cat")
    cat.write("AAPL", "1d", BARS)
    edit_manifest(cat, "AAPL", lambda doc: doc["parts"][0].update(last=int(BARS["ts"][100])))
    got = invoke("data", "check", "--data", cat.root)
    assert got.exit_code == 1, got.output
    flat = got.output.replace("\n", "")
    assert "no issues" not in flat and "holds 600 bars" in flat and "manifest lists" in flat
    strategy = tmp_path / "s.py"
    strategy.write_text((EXAMPLES / "sma_cross.py").read_text())
    run = invoke(
        "run",
        "--mode",
        "backtest",
        strategy,
        "--symbols",
        "AAPL",
        "--data",
        cat.root,
        "--out",
        tmp_path / "run",
    )
    assert run.exit_code == 1, run.output
    assert "manifest lists" in run.output and not (tmp_path / "run" / "metrics.json").exists()


def test_ls_reports_a_broken_entry_and_lists_the_rest(tmp_path):
    cat = Catalog(tmp_path / "cat")
    for s in ("A", "B", "C"):
        cat.write(s, "1d", BARS)
    cat.path("A", "1d").unlink()  # a missing part
    (cat.folder("B", "1d") / "_manifest.json").write_text("{not json")
    got = invoke("data", "ls", "--data", cat.root)
    assert got.exit_code == 1
    assert "Traceback" not in got.output
    assert got.exception is None or isinstance(got.exception, SystemExit)
    flat = got.output.replace("\n", "")
    assert "error: A 1d:" in flat and "error: B 1d: corrupt catalog manifest" in flat
    assert "│ C " in got.output and "600" in got.output  # C is listed


def _tree(root: Path) -> list[tuple[str, int]]:
    return sorted((str(p.relative_to(root)), p.stat().st_mtime_ns) for p in root.rglob("*"))


def test_a_backtest_over_a_read_only_catalog(tmp_path):
    """Reading opens nothing for writing: no `.lock`, no new file (as root too, where chmod
    does not stop a write, the folder's content shows it)."""
    cat = tmp_path / "cat"
    assert invoke("data", "demo", "--data", cat).exit_code == 0
    for lock in cat.rglob(".lock"):
        lock.unlink()
    before = _tree(cat)
    modes = {p: p.stat().st_mode for p in [cat, *cat.rglob("*")]}
    for p in sorted(modes, key=lambda p: -len(p.parts)):
        p.chmod(stat.S_IMODE(modes[p]) & ~0o222)
    try:
        got = invoke(
            "run",
            "--mode",
            "backtest",
            EXAMPLES / "sma_cross.py",
            "--data",
            cat,
            "--out",
            tmp_path / "run",
        )
        assert got.exit_code == 0, got.output
        listing = invoke("data", "ls", "--data", cat)
        assert listing.exit_code == 0, listing.output
        check = invoke("data", "check", "--data", cat)
        assert "Traceback" not in check.output
    finally:
        for p, mode in sorted(modes.items(), key=lambda kv: len(kv[0].parts)):
            os.chmod(p, mode)
    assert _tree(cat) == before


@pytest.fixture(scope="module")
def a_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    assert invoke("data", "demo", "--data", root / "cat").exit_code == 0
    got = invoke(
        "run",
        "--mode",
        "backtest",
        EXAMPLES / "sma_cross.py",
        "--data",
        root / "cat",
        "--out",
        root / "run",
    )
    assert got.exit_code == 0, got.output
    return root / "run"


@pytest.mark.parametrize("command", ["report", "compare"])
@pytest.mark.parametrize("name", ["bars.parquet", "metrics.json", "sub/../bars.parquet", "."])
def test_report_and_compare_never_write_onto_the_run(a_run, command, name):
    before = {p.name: p.read_bytes() for p in a_run.iterdir()}
    got = invoke(command, a_run, "--out", a_run / name)
    assert got.exit_code == 1, got.output
    assert "--out" in got.output and "Traceback" not in got.output
    assert {p.name: p.read_bytes() for p in a_run.iterdir()} == before


def test_report_into_the_run_folder_still_works(a_run):
    got = invoke("report", a_run, "--out", a_run / "tear.html")
    assert got.exit_code == 0, got.output
    assert (a_run / "tear.html").read_text().lstrip().lower().startswith("<!doctype html")
    (a_run / "tear.html").unlink()
