"""What a manifest says is checked before it is trusted: its parts are files of its folder
(nothing outside is read or deleted) and agree with their Parquet footers (rows, first and
last bar); reading needs no write access."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from connectors.data.catalog import Catalog, CatalogError
from connectors.data.synthetic import generate_bars

BARS = generate_bars(600, interval="1d", start="2020-01-01", seed=3)


def edit_manifest(cat: Catalog, symbol: str, change) -> None:
    path = cat.folder(symbol, "1d") / "_manifest.json"
    doc = json.loads(path.read_text())
    change(doc)
    path.write_text(json.dumps(doc))


@pytest.fixture
def victim(tmp_path):
    """A catalog with A stored, and a Parquet file outside it (a copy of A's part)."""
    cat = Catalog(tmp_path / "cat")
    cat.write("A", "1d", BARS)
    outside = tmp_path / "victim" / "v1.parquet"
    outside.parent.mkdir()
    shutil.copy(cat.path("A", "1d"), outside)
    return cat, outside


@pytest.mark.parametrize("how", ["relative", "absolute", "hidden", "not parquet"])
def test_a_manifest_naming_a_file_outside_its_folder_is_corrupt_and_nothing_goes(victim, how):
    """`../../../victim/v1.parquet` in a manifest was read, and the next write deleted it."""
    cat, outside = victim
    name = {
        "relative": "../../../victim/v1.parquet",
        "absolute": str(outside),
        "hidden": ".lock",
        "not parquet": "_manifest.json",
    }[how]
    edit_manifest(cat, "A", lambda doc: doc["parts"][0].update(file=name))
    with pytest.raises(CatalogError, match=r"corrupt catalog manifest .*is not a Parquet file"):
        cat.read("A", "1d")
    with pytest.raises(CatalogError, match="corrupt catalog manifest"):
        cat.write("A", "1d", generate_bars(5, interval="1d", start="2030-01-01", seed=1))
    assert outside.is_file()
    assert (cat.folder("A", "1d") / "_manifest.json").is_file()


@pytest.mark.parametrize("field,value", [("last", 100), ("first", 1), ("rows", 101)])
def test_a_manifest_that_disagrees_with_its_part_is_corrupt(victim, field, value):
    """An edited `last` cut a run to 101 of 600 bars while the catalog looked fine."""
    cat, _ = victim
    ts = BARS["ts"]
    wrong = {"last": int(ts[value]), "first": int(ts[value]), "rows": value}[field]
    edit_manifest(cat, "A", lambda doc: doc["parts"][0].update({field: wrong}))
    with pytest.raises(CatalogError, match="the manifest lists") as err:
        cat.read("A", "1d")
    assert "holds 600 bars" in str(err.value) and "_manifest.json" in str(err.value)
    with pytest.raises(CatalogError, match="the manifest lists"):
        list(cat.iter_batches(["A"], "1d"))
    with pytest.raises(CatalogError, match="the manifest lists"):
        cat.verify("A", "1d")


def test_parts_out_of_order_are_corrupt(tmp_path, monkeypatch):
    import connectors.data.catalog as catalog_mod

    monkeypatch.setattr(catalog_mod, "ROW_GROUP", 10)
    cat = Catalog(tmp_path)
    cat.write("A", "1d", BARS)
    assert len(cat.parts("A", "1d")) > 1
    edit_manifest(cat, "A", lambda doc: doc["parts"].reverse())
    with pytest.raises(CatalogError, match="starts at or before the end of"):
        cat.read("A", "1d")


def test_a_provider_read_of_a_disagreeing_manifest_is_an_error(victim):
    """The provider's cold read (its own Parquet path) defers to the catalog's check."""
    from connectors.data.seamless import SeamlessDataProvider

    cat, _ = victim
    edit_manifest(cat, "A", lambda doc: doc["parts"][0].update(last=int(BARS["ts"][100])))
    provider = SeamlessDataProvider(cat.root)
    with pytest.raises(CatalogError, match="the manifest lists"):
        provider.read("A", "1d")


def test_reading_takes_no_lock_and_writes_nothing(tmp_path):
    """A read-only catalog failed a backtest creating `.lock`: what a provider reads over a
    covered range opens nothing for writing (checked by what the folder holds after, which
    holds as root too, where chmod does not stop a write)."""
    from connectors.data.seamless import SeamlessDataProvider

    cat = Catalog(tmp_path)
    cat.write("A", "1d", BARS)
    folder = cat.folder("A", "1d")
    (folder / ".lock").unlink()
    before = sorted(p.name for p in folder.iterdir())
    provider = SeamlessDataProvider(tmp_path)
    ts = BARS["ts"]
    provider.ensure("A", "1d", int(ts[0]), int(ts[-1]))
    got = provider.read("A", "1d", int(ts[0]), int(ts[-1]))
    np.testing.assert_array_equal(got["close"], BARS["close"])
    assert sorted(p.name for p in folder.iterdir()) == before
