"""bench/book.py's parts run (tiny sizes), so the harness cannot rot."""

from __future__ import annotations

import numpy as np

from bench import book


def test_the_book_benchmarks_parts_run() -> None:
    assert book.bench_risk(200) > 0
    core = book.bench_core(50, 1e5)
    durable = book.bench_durable(20, 1e5)
    assert len(core) == 40 and len(durable) == 16  # every bar made an order
    assert np.all(core >= 0) and np.all(durable >= 0)
