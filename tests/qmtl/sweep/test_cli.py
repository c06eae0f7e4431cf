"""``qmtl sweep`` as a user drives it: the files it writes hold what `qmtl run` of each variant
reports; bad input is one error line and exit 1, nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from connectors.data.catalog import Catalog
from connectors.data.synthetic import generate_bars
from qmtl.cli import app
from qmtl.loader import load_strategy
from qmtl.strategy import default_strategy_id
from qmtl.sweep.cluster import free_ports
from tests.world_api.conftest import serve
from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.store import open_store

HERE = Path(__file__).parent
runner = CliRunner()


@pytest.fixture
def catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    cat = Catalog(root)
    for i, sym in enumerate(("AAA", "BBB")):
        cat.write(sym, "1d", generate_bars(800, seed=30 + i))
    monkeypatch.setenv("QMTL_DATA", str(root))
    monkeypatch.chdir(tmp_path)
    for var in ("QMTL_ORIGIN", "QMTL_QUESTDB"):
        monkeypatch.delenv(var, raising=False)
    return root


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_a_grid_writes_its_table_summary_and_heatmap(catalog: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = invoke("sweep", f"{HERE / 'strategies.py'}:SmaCross", "-p", "fast=5:20:5",
                 "-p", "slow=20,40", "--where", "fast < slow", "--top", "3",
                 "--train-end", "2016-06-30", "--walk-forward", "2", "--pbo",
                 "--pbo-splits", "4", "--out", str(out))
    assert res.exit_code == 0, res.output
    table = pq.read_table(out / "results.parquet")
    assert table.num_rows == 7  # (20, 20) is filtered out
    assert pcsv.read_csv(out / "results.csv").num_rows == 7
    assert {"variant", "fast", "slow", "sharpe", "train_sharpe", "test_sharpe"} <= set(
        table.column_names)
    # each row is what `qmtl run` of that variant reports
    row = table.to_pylist()[3]
    run_out = tmp_path / "run"
    got = invoke("run", f"{HERE / 'strategies.py'}:SmaCross", "-p", f"fast={row['fast']}",
                 "-p", f"slow={row['slow']}", "--out", str(run_out))
    assert got.exit_code == 0, got.output
    metrics = json.loads((run_out / "metrics.json").read_text())["metrics"]
    assert len(metrics) == 13
    for name, value in metrics.items():
        if value is None:  # NaN in metrics.json
            assert np.isnan(row[name]), name
        else:
            assert row[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
    # (its returns are the run's bit for bit: tests/qmtl/sweep/test_sweep.py)
    assert pq.read_table(run_out / "bars.parquet").num_rows == 2 * row["n_bars"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["variants"] == 7 and summary["rank_by"] == "train_sharpe"
    assert summary["dedup"] == pytest.approx(
        summary["nodes_per_variant_total"] / summary["nodes_evaluated"])
    assert summary["pbo"]["splits"] == 6 and len(summary["walk_forward"]["folds"]) == 2
    page = (out / "heatmap.html").read_text()
    assert "<script src=" not in page and page.count('<div class="chart" id="chart-') == 2
    assert "best 3 of 7 by train_sharpe" in res.output
    assert "deflated Sharpe of the best" in res.output
    assert "probability of backtest overfitting" in res.output
    assert "stitched out-of-sample sharpe" in res.output
    from qmtl.report.reading import reading
    from qmtl.sweep.stats import Deflated, Pbo

    d, p = summary["deflated_sharpe"], summary["pbo"]
    verdict = reading(Deflated(**d), Pbo(p["pbo"], np.zeros(p["splits"]))).verdict
    assert f"reading: {verdict}" in " ".join(res.output.split())
    assert "(significant;" not in res.output
    folds = res.output[res.output.index("walk-forward"):]
    for fold in summary["walk_forward"]["folds"]:  # each fold's choice, as its parameters
        i = table.column("variant").to_pylist().index(fold["chosen"])
        p = table.slice(i, 1).to_pylist()[0]
        assert f"fast={p['fast']}," in folds and f"slow={p['slow']}" in folds, folds
        assert fold["chosen"] not in folds


def test_several_files_without_p_run_together(catalog: Path, tmp_path: Path) -> None:
    folder = tmp_path / "strategies"
    folder.mkdir()
    text = (HERE / "strategies.py").read_text()
    (folder / "a.py").write_text(text.split("class RsiSwing")[0])
    (folder / "b.py").write_text("from qmtl import Strategy, latch\n\nclass RsiSwing"
                                 + text.split("class RsiSwing")[1])
    out = tmp_path / "many"
    res = invoke("sweep", str(folder), "--metric", "total_return", "--out", str(out))
    assert res.exit_code == 0, res.output
    table = pq.read_table(out / "results.parquet")
    assert table.column("strategy").to_pylist() == ["SmaCross", "RsiSwing"]
    assert not (out / "heatmap.html").exists()  # no grid of two numeric parameters


@pytest.mark.parametrize(("args", "message"), [
    (["-p", "fsat=1,2"], "no parameter 'fsat' (did you mean 'fast'?)"),
    (["-p", "fast=1:5"], "a range is start:stop:step"),
    (["-p", "fast=5,10", "--where", "__import__('os')"], "a function call is not allowed"),
    (["-p", "fast=5,10", "--where", "fast > 100"], "the grid is empty"),
    (["-p", "fast=5,10", "--metric", "sharp"], "unknown metric 'sharp'"),
    (["-p", "fast=5,10", "--pbo", "--pbo-splits", "3"], "even number"),
    (["-p", "fast=5,10", "--submit-top", "2"], "--submit-top needs --world"),
    (["--where", "fast < 3"], "--where and --random filter a -p grid"),
])
def test_bad_input_is_one_error_line(catalog: Path, tmp_path: Path, args: list[str],
                                     message: str) -> None:
    res = invoke("sweep", f"{HERE / 'strategies.py'}:SmaCross", *args, "--out",
                 str(tmp_path / "nothing"))
    assert res.exit_code == 1, res.output
    assert "error:" in res.output and message in " ".join(res.output.split())
    assert "Traceback" not in res.output
    assert not (tmp_path / "nothing").exists()


def test_p_with_several_strategies_is_refused(catalog: Path, tmp_path: Path) -> None:
    shutil.copy(HERE / "strategies.py", tmp_path / "s.py")
    res = invoke("sweep", f"{tmp_path / 's.py'}:SmaCross", f"{tmp_path / 's.py'}:RsiSwing",
                 "-p", "fast=1,2")
    assert res.exit_code == 1 and "-p sweeps one strategy" in res.output


def test_sweep_results_match_for_workers(catalog: Path, tmp_path: Path) -> None:
    tables = []
    for workers in ("1", "2"):
        out = tmp_path / f"w{workers}"
        res = invoke("sweep", f"{HERE / 'strategies.py'}:SmaCross", "-p", "fast=5,10",
                     "-p", "slow=30,60", "--workers", workers, "--out", str(out))
        assert res.exit_code == 0, res.output
        tables.append(pq.read_table(out / "results.parquet"))
    assert tables[0].equals(tables[1])
    assert np.isfinite(tables[0].column("sharpe").to_numpy()).all()


def test_a_cluster_started_by_hand_as_on_several_hosts(catalog: Path, tmp_path: Path) -> None:
    """Two `qmtl sweep -a ... -i N` processes (as two hosts would run them): one gathers and
    writes the results, equal to a sweep in one process; the other says it is done."""
    addresses = ",".join(f"127.0.0.1:{p}" for p in free_ports(2))
    target = f"{HERE / 'strategies.py'}:SmaCross"
    args = ["-p", "fast=5,10,15", "-p", "slow=30,60", "--data", str(catalog)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[3])}
    procs = [subprocess.Popen([sys.executable, "-m", "qmtl.cli", "sweep", target, *args,
                               "-a", addresses, "-i", str(i), "--out", str(tmp_path / f"h{i}")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True)
             for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    wrote = [i for i in range(2) if (tmp_path / f"h{i}" / "results.parquet").exists()]
    assert len(wrote) == 1
    other = 1 - wrote[0]
    assert "another process of the cluster gathered the results" in outs[other][0]
    alone = tmp_path / "alone"
    assert invoke("sweep", target, *args, "--out", str(alone)).exit_code == 0
    got = pq.read_table(tmp_path / f"h{wrote[0]}" / "results.parquet")
    assert got.equals(pq.read_table(alone / "results.parquet"))


def test_submit_top_enters_the_best_variants_in_a_world(catalog: Path, tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "world.db"))
    op = create_token(store, "operator", "ops")
    dev = create_token(store, "developer", "quant")
    with serve(create_app(store)) as url:
        auth = {"Authorization": f"Bearer {op}"}
        assert httpx.post(f"{url}/worlds", json={"id": "w", "capital": 1e6},
                          headers=auth).status_code == 201
        res = invoke("sweep", f"{HERE / 'strategies.py'}:SmaCross", "-p", "fast=5,10,15",
                     "-p", "slow=30,60", "--submit-top", "2", "--world", "w", "--url", url,
                     "--token", dev, "--out", str(tmp_path / "out"))
        snap = httpx.get(f"{url}/worlds/w/activation", headers=auth).json()
    store.close()
    assert res.exit_code == 0, res.output
    best = pq.read_table(tmp_path / "out" / "results.parquet").to_pylist()
    best.sort(key=lambda r: -r["sharpe"])
    cls = load_strategy(f"{HERE / 'strategies.py'}:SmaCross")
    want = sorted(default_strategy_id(cls(fast=r["fast"], slow=r["slow"])) for r in best[:2])
    assert sorted(r["strategy_id"] for r in snap["strategies"]) == want
    assert res.output.count("submitted v") == 2
