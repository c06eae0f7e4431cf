"""Huge-page advice is off inside a replay and restored after; a user's own setting stands."""

from __future__ import annotations

import numpy as np
import pytest

from qmtl.pages import small_pages

setter = getattr(getattr(np, "_core", np).multiarray, "_set_madvise_hugepage", None)
pytestmark = pytest.mark.skipif(setter is None, reason="this numpy has no huge-page switch")


def advised() -> bool:
    """The current setting (setting it returns the previous one)."""
    now = setter(True)
    setter(now)
    return now


@pytest.fixture(autouse=True)
def restore():
    before = advised()
    yield
    setter(before)


def test_off_inside_and_restored_after(monkeypatch):
    monkeypatch.delenv("NUMPY_MADVISE_HUGEPAGE", raising=False)
    setter(True)
    with small_pages():
        assert advised() is False
    assert advised() is True
    with pytest.raises(RuntimeError, match="replay failed"):  # restored on errors too
        with small_pages():
            raise RuntimeError("replay failed")
    assert advised() is True


def test_a_users_numpy_setting_stands(monkeypatch):
    monkeypatch.setenv("NUMPY_MADVISE_HUGEPAGE", "1")
    setter(True)
    with small_pages():
        assert advised() is True
