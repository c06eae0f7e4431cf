"""The folder origin over another QMTL catalog: of parts, and of one file as written before
parts."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

import connectors.data.catalog as catalog_mod
from connectors.data.catalog import Catalog
from connectors.data.origins import FolderOrigin
from connectors.data.seamless import SeamlessDataProvider
from connectors.data.synthetic import generate_bars


def test_a_catalog_of_parts_backfills_another(tmp_path, monkeypatch):
    monkeypatch.setattr(catalog_mod, "ROW_GROUP", 100)
    bars = generate_bars(5_000, interval="1m", seed=11)
    shared = Catalog(tmp_path / "shared")
    shared.write("X", "1m", bars)
    assert len(shared.parts("X", "1m")) == 4
    data = SeamlessDataProvider(tmp_path / "mine", origin=FolderOrigin(shared.root))
    lo, hi = int(bars["ts"][100]), int(bars["ts"][4_321])
    got = data.read("X", "1m", lo, hi)
    for c in bars:
        assert got[c].tobytes() == bars[c][100:4_322].tobytes()
    assert data.stats["backfills"] == 1 and data.catalog.covered("X", "1m").ranges == [(lo, hi)]


def test_a_catalog_of_single_files_still_serves(tmp_path):
    bars = generate_bars(300, interval="1d", seed=12)
    folder = tmp_path / "old" / "symbol=X" / "interval=1d"
    folder.mkdir(parents=True)
    pq.write_table(pa.table(bars), folder / "bars.parquet")
    chunks = list(FolderOrigin(tmp_path / "old").fetch("X", "1d", 0, 2**62))
    assert np.concatenate([c["close"] for c in chunks]).tobytes() == bars["close"].tobytes()
