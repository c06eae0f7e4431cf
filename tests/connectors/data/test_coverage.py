"""Coverage arithmetic against a plain set of grid points (hypothesis)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.data.coverage import Coverage

ranges = st.lists(
    st.tuples(st.integers(0, 60), st.integers(0, 8)).map(lambda t: (t[0], t[0] + t[1])), max_size=8
)


def points(rs):
    return {p for a, b in rs for p in range(a, b + 1)}


def as_ranges(ps):
    """Maximal runs of consecutive points."""
    out, run = [], None
    for p in sorted(ps):
        if run and p == run[1] + 1:
            run = (run[0], p)
        else:
            if run:
                out.append(run)
            run = (p, p)
    if run:
        out.append(run)
    return out


@settings(max_examples=300, deadline=None)
@given(ranges, ranges)
def test_add_subtract_missing_equal_set_arithmetic(have, remove):
    cov = Coverage(have)
    assert cov.ranges == as_ranges(points(have))  # merged, disjoint, non-adjacent
    assert cov.total() == len(points(have))
    for a, b in remove:
        cov.subtract(a, b)
    assert cov.ranges == as_ranges(points(have) - points(remove))


@settings(max_examples=300, deadline=None)
@given(ranges, st.integers(0, 70), st.integers(0, 70))
def test_missing_is_the_complement_within_the_query(have, lo, span):
    cov = Coverage(have)
    hi = lo + span
    want = set(range(lo, hi + 1)) - points(have)
    assert cov.missing(lo, hi) == as_ranges(want)
    assert cov.contains(lo, hi) == (not want)


def test_step_makes_adjacent_bars_one_range():
    day = 86_400
    cov = Coverage(step=day).add(0, 4 * day).add(5 * day, 9 * day)
    assert cov.ranges == [(0, 9 * day)]
    assert cov.missing(0, 12 * day) == [(10 * day, 12 * day)]
