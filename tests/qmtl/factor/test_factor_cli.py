"""``qmtl factor`` as a user runs it: one alpha, a strategy file, a file of many alphas in
one flow; the JSON beside the page holds the numbers ``qmtl.factor`` gives; bad input is
one error line, nothing written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import qmtl
from connectors.data.catalog import Catalog
from connectors.data.synthetic import generate_bars
from qmtl.cli import app

SYMBOLS = ["AAA", "BBB", "CCC", "DDD", "EEE"]
runner = CliRunner()


@pytest.fixture
def catalog(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "data"
    cat = Catalog(root)
    for i, s in enumerate(SYMBOLS):
        cat.write(s, "1d", generate_bars(200, seed=60 + i))
    monkeypatch.setenv("QMTL_DATA", str(root))
    for var in ("QMTL_ORIGIN", "QMTL_QUESTDB"):
        monkeypatch.delenv(var, raising=False)
    return root


def test_a_file_of_alphas_runs_in_one_flow_and_writes_page_and_json(
        catalog: Path, tmp_path: Path) -> None:
    texts = ["rank(-ts_delta(close, 5))", "rank(ts_delta(close, 5))",
             "zscore(ts_mean(returns, 5))", "rank(-ts_delta(close, 5)) * 2"]
    alphas = tmp_path / "alphas.txt"
    alphas.write_text("# my alphas\n" + "\n".join(texts) + "\n")
    out = tmp_path / "out"
    groups = tmp_path / "g.csv"
    groups.write_text("symbol,sector\n" + "".join(f"{s},{'x' if i < 3 else 'y'}\n"
                                                  for i, s in enumerate(SYMBOLS)))
    res = runner.invoke(app, ["factor", str(alphas), "--symbols", ",".join(SYMBOLS),
                              "--groups", str(groups), "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "4 alpha(s) in one flow" in res.output
    doc = json.loads((out / "factor.json").read_text())
    assert doc["dedup"] > 1.0  # ts_delta(close, 5) and its rank are shared
    html = (out / "factor.html").read_text()
    assert "Factor analysis" in html and "Monthly rank IC" in html and "http" not in html[:200]
    for got, text in zip(doc["factors"], texts, strict=True):
        want_groups = {s: ("x" if i < 3 else "y") for i, s in enumerate(SYMBOLS)}
        want = qmtl.factor(text, Catalog(catalog), symbols=SYMBOLS, groups=want_groups)
        assert got["alpha"] == text
        assert got["name"] == qmtl.alpha(text, SYMBOLS, groups=want_groups).name
        assert got["horizons"]["5"]["rank_ic"]["mean"] == pytest.approx(
            want.stats.horizons[5].rank_ic_summary.mean, abs=1e-12)
        assert set(got["horizons"]["1"]["rank_ic_by_group"]) == {"x", "y"}
    a, b = doc["factors"][0], doc["factors"][1]  # opposite signs: opposite rank IC
    assert a["horizons"]["1"]["rank_ic"]["mean"] == pytest.approx(
        -b["horizons"]["1"]["rank_ic"]["mean"], abs=1e-12)


def test_a_strategy_file_is_analysed_through_its_weights(catalog: Path, tmp_path: Path
                                                         ) -> None:
    strat = tmp_path / "s.py"
    strat.write_text("from qmtl import Strategy, cs\n\nclass Rev(Strategy):\n"
                     f"    symbols = {SYMBOLS!r}\n\n    def signal(self, bars):\n"
                     "        return cs.scale(cs.demean(cs.rank(-bars.close.diff(5))))\n")
    res = runner.invoke(app, ["factor", str(strat), "--out", str(tmp_path / "o")])
    assert res.exit_code == 0, res.output
    doc = json.loads((tmp_path / "o" / "factor.json").read_text())
    alpha = qmtl.factor("rank(-ts_delta(close, 5))", Catalog(catalog), symbols=SYMBOLS)
    assert doc["factors"][0]["horizons"]["1"]["rank_ic"]["mean"] == pytest.approx(
        alpha.stats.horizons[1].rank_ic_summary.mean, abs=1e-12)


@pytest.mark.parametrize(("args", "message"), [
    (["rank(clse)", "--symbols", "AAA"], "unknown field 'clse'"),
    (["rank(close)"], "no symbols"),
    (["rank(close)", "--symbols", "AAA", "--horizons", "1,x"], "--horizons"),
    (["rank(close)", "--symbols", "AAA", "--quantiles", "1"], "quantiles must be >= 2"),
])
def test_bad_input_is_one_error_and_nothing_written(catalog: Path, tmp_path: Path,
                                                    args: list[str], message: str) -> None:
    out = tmp_path / "nothing"
    res = runner.invoke(app, ["factor", *args, "--out", str(out)])
    assert res.exit_code == 1, res.output
    assert message in res.output
    assert not out.exists()
