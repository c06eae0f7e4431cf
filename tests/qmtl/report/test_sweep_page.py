"""The sweep's page: the reading of DSR and PBO together, the walk-forward folds with their
parameters, the best variants and the values in the heatmaps' cells, on a real sweep."""

from __future__ import annotations

import html
import math
import re

import numpy as np
import pytest

from connectors.data.synthetic import generate_bars
from qmtl import Strategy, sweep
from qmtl.cli.common import format_metric
from qmtl.report.sweep import reading, sweep_page
from qmtl.sweep.heatmap import grid
from qmtl.sweep.stats import Deflated, Pbo
from tests.qmtl.report.test_page import drawn


class SmaCross(Strategy):
    symbols = ["A"]
    fast: int = 10
    slow: int = 50

    def signal(self, bars):
        return bars.close.sma(self.fast) > bars.close.sma(self.slow)


@pytest.fixture(scope="module")
def swept():
    return sweep(SmaCross, {"fast": "5:40:5", "slow": "30:120:15"},
                 {"A": generate_bars(1500, seed=2)}, train_end="2018-06-30",
                 walk_forward=3, pbo=True, pbo_splits=8)


def dsr(value: float) -> Deflated:
    return Deflated(value, 0.08, 0.05, 100, 0.001, 500)


def pbo(value: float) -> Pbo:
    return Pbo(value, np.zeros(70))


@pytest.mark.parametrize(("d", "p", "level", "verdict"), [
    (dsr(0.963), pbo(0.72), "bad", "overfit: the ranking does not hold out of sample"),
    (dsr(0.99), pbo(0.05), "good", "an edge beyond selection luck"),
    (dsr(0.99), pbo(0.30), "warn", "mixed: treat with caution"),
    (dsr(0.50), pbo(0.05), "warn", "not significant, though the ranking holds"),
    (dsr(0.50), pbo(0.70), "bad", "no evidence of an edge"),
    (dsr(0.99), None, "warn", "significant by the DSR alone: PBO not computed"),
    (dsr(0.40), None, "bad", "not significant"),
    (None, pbo(0.72), "bad", "overfit: the ranking does not hold out of sample"),
    (None, pbo(0.05), "good", "the ranking holds out of sample"),
    (dsr(math.nan), pbo(0.3), "warn", "the ranking holds only partly"),
])
def test_the_reading_weighs_dsr_and_pbo_together(d, p, level, verdict):
    r = reading(d, p)
    assert (r.level, r.verdict) == (level, verdict)
    if d is not None and math.isfinite(d.dsr):
        assert f"DSR {d.dsr:.3f}" in r.text
    if p is not None:
        assert f"PBO {p.pbo:.2f}" in r.text and f"{p.pbo:.0%} of the 70 splits" in r.text
    if d is not None and d.dsr >= 0.95 and p is not None and p.pbo > 0.5:
        assert "Do not rely on it" in r.text


def test_a_high_dsr_over_a_high_pbo_is_not_called_significant_on_the_page():
    swept = sweep(SmaCross, {"fast": "5,10", "slow": "30,60"},
                  {"A": generate_bars(600, seed=3)})
    swept.deflated, swept.pbo = dsr(0.963), pbo(0.72)
    page = sweep_page(swept)
    verdict = re.search(r'<span class="verdict (\w+)">(.*?)</span>(.*?)</p>', page)
    assert verdict.group(1) == "bad"
    assert "significant" not in verdict.group(2)
    assert "DSR 0.963" in html.unescape(verdict.group(3))
    assert "PBO 0.72" in html.unescape(verdict.group(3))


def test_the_page_of_a_real_sweep(swept):
    page = sweep_page(swept)
    r = reading(swept.deflated, swept.pbo)
    assert f'<span class="verdict {r.level}">{html.escape(r.verdict)}</span>' in page
    stats = dict(re.findall(r'data-stat="(\w+)" data-value="([^"]*)"', page))
    assert float(stats["dsr"]) == swept.deflated.dsr
    assert float(stats["pbo"]) == swept.pbo.pbo
    assert float(stats["walk_forward"]) == swept.walk_forward.metrics["sharpe"]
    # each fold names the parameters it chose, never the internal key
    folds = re.search(r'<table class="folds">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row)
             for row in re.findall(r"<tr>(.*?)</tr>", folds)]
    assert len(cells) == 3
    keys = [r.key for r in swept.runs]
    for fold, row in zip(swept.walk_forward.folds, cells, strict=True):
        p = swept.params[keys.index(fold.chosen)]
        assert row[5] == f"fast={p['fast']}, slow={p['slow']}"
        assert row[6] == format_metric("sharpe", fold.train_value)
        assert row[7] == format_metric("sharpe", fold.test_value)
    assert not re.search(r"<td>v\d+</td>", page)
    # the best variants, best first
    best = re.search(r'<table class="best">.*?<tbody>(.*?)</tbody>', page, re.S).group(1)
    first = re.findall(r"<td[^>]*>(.*?)</td>", re.findall(r"<tr>(.*?)</tr>", best)[0])
    top = swept.best(1).to_pylist()[0]
    assert first[:4] == ["1", str(top["fast"]), str(top["slow"]),
                         format_metric("sharpe", top["train_sharpe"])]
    # every heatmap cell carries its value as text, drawn in the cell
    figs = drawn(page)
    assert len(figs) == 2
    for fig, metric in zip(figs.values(), ["train_sharpe", "test_sharpe"], strict=True):
        trace = fig["data"][0]
        assert trace["texttemplate"] == "%{text}"
        _, _, z = grid("fast", "slow", swept.table, metric)
        want = [["" if np.isnan(v) else format_metric("sharpe", v) for v in row] for row in z]
        assert trace["text"] == want
