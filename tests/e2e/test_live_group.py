"""A shared-feed group (``qmtl.live.group``): strategies that share a node compute it once
for all of them on one live flow, and each gets what its own separate live run gets; a group
stopped and run again on its recovery folder goes on without a lost or doubled bar."""

from __future__ import annotations

import uuid

import numpy as np
import pytest

from dataflows.compiler import build_program
from qmtl import Strategy
from qmtl.live import LiveError, LiveOptions, run_live
from qmtl.live.group import Member, group_specs, run_live_group
from qmtl.operator import Operator
from tests.e2e.live_helpers import activate, make_data, world_server, write_catalog


class Counted(Operator):
    """The close, smoothed (it carries state); counts its calls and the rows it saw."""

    calls = 0
    rows = 0

    def __init__(self) -> None:
        self.last = np.nan

    def update(self, x):
        type(self).calls += 1
        type(self).rows += len(x)
        out = np.empty_like(x)
        for i, v in enumerate(x):
            self.last = v if np.isnan(self.last) else 0.5 * (self.last + v)
            out[i] = self.last
        return out


class Fast(Strategy):
    symbols = ["AAA", "BBB"]
    n: int = 3

    def signal(self, bars):
        smooth = Counted()(bars.close)
        return smooth.sma(self.n) > bars.close.sma(8)


def options(tmp_path, url, **kw):
    return LiveOptions(world="w", url=url, paper=True, data=tmp_path / "catalog", speed="max",
                       warmup=0, orders_store=str(tmp_path / f"o-{uuid.uuid4().hex[:6]}.db"),
                       **kw)


def test_a_shared_node_is_computed_once_and_each_member_gets_its_separate_run(tmp_path):
    data = make_data(150)
    write_catalog(tmp_path / "catalog", data)
    a, b = Fast(n=3), Fast(n=5)
    members = [Member("a", a, out=tmp_path / "a"), Member("b", b, out=tmp_path / "b")]
    specs, _ = group_specs(members, LiveOptions())
    # the close, Counted(close) and sma(8) of close are one node each for the two
    assert len(build_program(specs).nodes) == 2 * len(build_program(specs[:1]).nodes) - 3
    with world_server(tmp_path) as url:
        for sid in ("a", "b"):
            activate(url, "w", sid)
        Counted.calls = Counted.rows = 0
        group = run_live_group(members, options(tmp_path, url))
        group_rows = Counted.rows
        alone = {}
        separate_rows = 0
        for sid, s in (("a", a), ("b", b)):
            Counted.rows = 0
            alone[sid] = run_live(s, options(tmp_path, url, strategy_id=sid))
            separate_rows += Counted.rows
    # one kernel per symbol saw each bar once in the group, once per run apart
    assert group_rows == 2 * 150
    assert separate_rows == 2 * group_rows
    for sid in ("a", "b"):
        g, s = group[sid], alone[sid]
        assert g.n_bars == s.n_bars == 150
        assert np.array_equal(g.ts, s.ts)
        assert np.array_equal(g.returns, s.returns)
        assert np.array_equal(g.equity, s.equity)
        assert g.metrics == pytest.approx(s.metrics, nan_ok=True)
        assert [(f.symbol, f.ts, f.qty, f.price) for f in g.fills] == [
            (f.symbol, f.ts, f.qty, f.price) for f in s.fills
        ]
        assert len(g.fills) > 5
    assert not np.array_equal(group["a"].returns, group["b"].returns)  # two strategies


def test_a_muted_member_holds_its_orders_while_the_other_trades(tmp_path):
    data = make_data(120)
    write_catalog(tmp_path / "catalog", data)
    members = [Member("a", Fast(n=3)), Member("b", Fast(n=5))]
    with world_server(tmp_path) as url:
        for sid in ("a", "b"):
            activate(url, "w", sid)
        got = run_live_group(members, options(tmp_path, url), muted=lambda sid: sid == "b")
    assert got["b"].fills == [] and got["b"].orders == []
    assert len(got["a"].fills) > 5


def test_a_group_resumes_from_its_recovery_folder_without_a_lost_or_doubled_bar(tmp_path):
    data = make_data(160)
    write_catalog(tmp_path / "catalog", data)
    members = [Member("a", Fast(n=3), out=tmp_path / "a"), Member("b", Fast(n=5),
                                                                    out=tmp_path / "b")]
    with world_server(tmp_path) as url:
        for sid in ("a", "b"):
            activate(url, "w", sid)
        whole = run_live_group(members, options(tmp_path, url))
        o = options(tmp_path, url, recovery_dir=tmp_path / "rec")
        first = run_live_group(members, LiveOptions(**{**vars(o), "max_bars": 2 * 70}))
        rest = run_live_group(members, o)
        with pytest.raises(LiveError, match="holds"):  # another set of members: refused
            run_live_group(members[:1], o)
    for sid in ("a", "b"):
        assert 0 < first[sid].n_bars < 160
        assert rest[sid].n_bars == 160
        assert np.array_equal(rest[sid].ts, whole[sid].ts)
        assert np.array_equal(rest[sid].returns, whole[sid].returns)
