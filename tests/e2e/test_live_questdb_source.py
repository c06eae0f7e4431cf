"""QuestDB as a live source (issue 27 §3), PostgreSQL standing in for it: a live run tails a
table of bars (``--source questdb://...``) as rows are written, is stopped, more rows are
written, and the run resumed from its recovery folder goes on from the last row it saw: no
row lost or repeated at the boundary (two symbols share every time, and pages of 7 rows cut
times in two), and the returns equal the backtest over the same rows."""

from __future__ import annotations

import numpy as np
import psycopg
import pytest

from connectors.data.catalog import Catalog
from connectors.data.synthetic import generate_bars
from qmtl import Strategy
from qmtl.live import LiveOptions, run_live
from qmtl.runner import backtest
from tests.e2e.live_helpers import activate, max_abs_diff, world_server
from tests.world_api.conftest import PG_URL
from tests.world_api.conftest import _ensure_pg as ensure_pg

SYMBOLS = ("AAA", "BBB")


class Cross(Strategy):
    symbols = list(SYMBOLS)
    interval = "1m"

    def signal(self, bars):
        return bars.close.sma(3) > bars.close.sma(8)


@pytest.fixture
def schema():
    why = ensure_pg()
    if why:
        pytest.skip(why)
    name = f"qmtl_tail_{np.random.default_rng().integers(1 << 40):x}"
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{name}"')
        c.execute(
            f'CREATE TABLE "{name}"."bars_1m" (symbol text, open double precision, '
            "high double precision, low double precision, close double precision, "
            "volume double precision, ts timestamp)"
        )
    yield name
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(f'DROP SCHEMA "{name}" CASCADE')


def write_rows(schema: str, data, lo: int, hi: int) -> None:
    with psycopg.connect(PG_URL, autocommit=True) as c, c.cursor() as cur:
        for s, b in data.items():
            cur.executemany(
                f'INSERT INTO "{schema}"."bars_1m" VALUES (%s, %s, %s, %s, %s, %s, '
                "to_timestamp(%s / 1e9) AT TIME ZONE 'UTC')",
                [
                    (
                        s,
                        *(float(b[c][i]) for c in ("open", "high", "low", "close", "volume")),
                        int(b["ts"][i]),
                    )
                    for i in range(lo, hi)
                ],
            )


def test_a_questdb_sourced_live_run_equals_the_backtest_through_a_restart(schema, tmp_path):
    data = {
        s: generate_bars(160, interval="1m", start="2024-03-01", seed=i)
        for i, s in enumerate(SYMBOLS)
    }
    cat = Catalog(tmp_path / "catalog")
    for s, b in data.items():
        cat.write(s, "1m", {k: v[:60] for k, v in b.items()})
    start = int(data["AAA"]["ts"][60])
    write_rows(schema, data, 40, 110)  # overlapping the history: skipped at the hand-off
    source = f"questdb://{PG_URL.split('://', 1)[1]}?table={schema}.bars_{{interval}}&page_rows=7"
    with world_server(tmp_path) as url:
        activate(url, "w", "Cross")

        def live(max_bars: int):
            return run_live(
                Cross,
                LiveOptions(
                    source=source,
                    world="w",
                    url=url,
                    paper=True,
                    data=tmp_path / "catalog",
                    start=start,
                    max_bars=max_bars,
                    recovery_dir=tmp_path / "rec",
                    snapshot_interval=0.05,
                    orders_store=str(tmp_path / "orders.db"),
                    stop_after_idle=2.0,
                ),
            )

        first = live(2 * 50)  # rows 60..109 of both symbols
        write_rows(schema, data, 110, 160)  # written while the run is down
        second = live(2 * 100)
    bt = backtest(Cross, data={s: b for s, b in data.items()}, start=start)
    assert first.stats.live_bars == 100
    assert second.stats.live_bars == 200 and second.stats.dead_letters == 0
    # the resumed run reports the bars it ran; with the first run's, every bar once
    ts = np.concatenate([first.ts, second.ts])
    assert np.array_equal(ts, bt.ts) and len(second.ts) == 50
    assert max_abs_diff(np.concatenate([first.returns, second.returns]), bt.returns) <= 1e-12
