"""Strategy artifacts (qmtl/artifact.py): a source strategy is rebuilt from the stored text
alone (its file may be gone), with the same graph id and the same target weights as the
original; a changed file or parameter is refused naming both graph ids; a tampered
artifact is refused by its content id; graph-only strategies travel as specs."""

from __future__ import annotations

import textwrap

import numpy as np
import pytest

from connectors.data.synthetic import generate_bars
from qmtl import backtest
from qmtl.alpha.spec import from_spec
from qmtl.artifact import (
    ArtifactChanged,
    ArtifactError,
    artifact_id,
    build_artifact,
    check_artifact,
    graph_id,
    load_artifact,
    metadata,
    verify,
)
from qmtl.loader import load_strategy

SOURCE = textwrap.dedent("""
    from qmtl import Strategy

    class Cross(Strategy):
        symbols = ["A"]
        interval = "1d"
        fast: int = 3
        slow: int = 8

        def signal(self, bars):
            return bars.close.sma(self.fast) > bars.close.sma(self.slow)
""")


@pytest.fixture
def cross(tmp_path):
    path = tmp_path / "dev" / "cross.py"
    path.parent.mkdir()
    path.write_text(SOURCE)
    return path


def test_source_artifact_rebuilds_from_stored_text_alone(cross, tmp_path):
    s = load_strategy(f"{cross}:Cross")(fast=4, cost_bps=2.0)
    doc = build_artifact(s, "cross-4")
    assert doc["kind"] == "source" and doc["files"] == {"cross.py": SOURCE}
    assert doc["params"] == {"fast": 4, "slow": 8} and doc["settings"]["cost_bps"] == 2.0
    assert doc["data"] == {
        "symbols": ["A"],
        "interval": "1d",
        "context": [],
        "warmup": None,
        "lookback": 7,
    }
    cross.unlink()  # the developer's disk is not read again
    rebuilt = verify(doc, tmp_path / "runner")
    assert (rebuilt.fast, rebuilt.slow, rebuilt.cost_bps) == (4, 8, 2.0)
    assert graph_id(rebuilt) == doc["graph_id"] == graph_id(s)
    data = {"A": generate_bars(120, seed=3)}
    a, b = backtest(s, data=data), backtest(rebuilt, data=data)
    assert np.array_equal(a.returns, b.returns) and a.metrics == b.metrics


def test_changed_code_or_parameter_is_refused_with_both_ids(cross, tmp_path):
    doc = build_artifact(load_strategy(f"{cross}:Cross")(), "cross")
    changed = dict(doc, files={"cross.py": SOURCE.replace("self.slow)", "self.slow + 1)")})
    changed["id"] = artifact_id(changed)
    with pytest.raises(ArtifactChanged) as err:
        verify(changed, tmp_path / "r")
    assert str(err.value) == (
        f"strategy cross changed since it was evaluated: graph id "
        f"{doc['graph_id']} != {err.value.built}"
    )
    assert err.value.built != doc["graph_id"]
    other = dict(doc, params={"fast": 3, "slow": 9})
    other["id"] = artifact_id(other)
    with pytest.raises(ArtifactChanged):
        verify(other, tmp_path / "r")


def test_tampered_or_malformed_artifacts_are_refused(cross, tmp_path):
    doc = build_artifact(load_strategy(f"{cross}:Cross")(), "cross")
    tampered = dict(doc, params={"fast": 1, "slow": 2})  # id left as it was
    with pytest.raises(ArtifactError, match="is not its content id"):
        check_artifact(tampered)
    escape = dict(doc, files={"../evil.py": "x"}, module_file="../evil.py")
    escape["id"] = artifact_id(escape)
    with pytest.raises(ArtifactError, match="plain module name"):
        load_artifact(escape, tmp_path / "r")
    assert not (tmp_path / "evil.py").exists()
    assert "files" not in metadata(doc) and "params" not in metadata(doc)


def test_graph_strategy_travels_as_a_spec(tmp_path):
    s = from_spec(
        {
            "qmtl_spec": 1,
            "output": "w",
            "symbols": ["A", "B"],
            "nodes": [
                {"id": "c", "op": "col", "params": {"name": "close"}, "inputs": []},
                {"id": "m", "op": "rolling_mean", "params": {"n": 5}, "inputs": ["c"]},
                {"id": "w", "op": "gt", "params": {}, "inputs": ["c", "m"]},
            ],
        }
    )
    doc = build_artifact(s, "alpha1")
    assert doc["kind"] == "spec" and "files" not in doc
    assert verify(doc, tmp_path).target().id == s.target().id
