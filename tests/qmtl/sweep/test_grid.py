"""Grid syntax, the --where filter (never eval'd) and random draws."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qmtl import Strategy
from qmtl.sweep.grid import GridError, Where, expand, parse_values


class S(Strategy):
    fast: int = 10
    slow: int = 50
    k: float = 1.0
    mode: str = "a"
    on: bool = False


@given(st.integers(-50, 50), st.integers(0, 60), st.integers(1, 9))
def test_integer_ranges_include_the_end_when_on_the_step(a: int, span: int, step: int) -> None:
    b = a + span
    got = parse_values("n", f"{a}:{b}:{step}")
    assert got == list(range(a, b + 1, step))
    assert (b in got) == (span % step == 0)


def test_float_ranges_and_lists_take_the_declared_types() -> None:
    grid = expand(S, {"k": "0.1:0.3:0.1", "mode": "a,b", "on": "yes,no"})
    assert sorted({v["k"] for v in grid}) == [0.1, 0.2, 0.3]
    assert {v["mode"] for v in grid} == {"a", "b"} and {v["on"] for v in grid} == {True, False}
    assert len(grid) == 3 * 2 * 2
    # the last parameter changes fastest
    assert [(v["k"], v["mode"], v["on"]) for v in grid[:3]] == [
        (0.1, "a", True), (0.1, "a", False), (0.1, "b", True)]


def test_python_iterables_are_grids_too() -> None:
    assert expand(S, {"fast": range(5, 8), "slow": [20]}) == [
        {"fast": f, "slow": 20} for f in (5, 6, 7)]


@pytest.mark.parametrize(("grid", "message"), [
    ({"fsat": "1:3:1"}, "no parameter 'fsat' (did you mean 'fast'?)"),
    ({"fast": "1:3"}, "a range is start:stop:step"),
    ({"fast": "3:1:1"}, "ends before it starts"),
    ({"fast": "1:x:1"}, "'x' in '1:x:1' is not a number"),
    ({"fast": "1:2:0.5"}, "expects int"),
    ({"fast": ""}, "no values given"),
    ({"fast": "1,,2"}, "empty value"),
    ({}, "the grid is empty"),
])
def test_bad_grids_say_what_is_wrong(grid: dict, message: str) -> None:
    with pytest.raises(GridError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("?", r"\?")):
        expand(S, grid)


@pytest.mark.parametrize("text", [
    "__import__('os').system('true')", "fast.__class__", "[fast]", "fast if slow else 1",
    "(lambda: 1)()", "'a' < mode", "fast[0]", "slow @ fast",
])
def test_where_refuses_anything_but_names_numbers_and_operators(text: str) -> None:
    with pytest.raises(GridError, match="--where"):
        Where(text, ["fast", "slow", "mode"])


def test_where_keeps_what_python_would() -> None:
    expr = "fast < slow and not (slow - fast) % 20 or fast * 2 >= slow ** 1"
    grid = expand(S, {"fast": "5:40:5", "slow": "10:80:10"}, where=expr)
    want = [{"fast": f, "slow": s} for f, s in itertools.product(range(5, 41, 5),
                                                                 range(10, 81, 10))
            if (f < s and not (s - f) % 20) or f * 2 >= s]
    assert grid == want


def test_where_sees_defaults_of_parameters_not_swept() -> None:
    assert expand(S, {"fast": "40:60:10"}, where="fast < slow") == [{"fast": 40}]


def test_where_that_removes_everything_is_an_empty_grid() -> None:
    with pytest.raises(GridError, match="removes all 3 variants"):
        expand(S, {"fast": "1:3:1"}, where="fast > slow")


def test_random_draws_distinct_variants_in_grid_order_reproducibly() -> None:
    full = expand(S, {"fast": "1:20:1", "slow": "1:20:1"})
    a = expand(S, {"fast": "1:20:1", "slow": "1:20:1"}, random=37, seed=9)
    b = expand(S, {"fast": "1:20:1", "slow": "1:20:1"}, random=37, seed=9)
    c = expand(S, {"fast": "1:20:1", "slow": "1:20:1"}, random=37, seed=10)
    assert a == b != c and len(a) == 37
    positions = [full.index(v) for v in a]
    assert positions == sorted(set(positions))
    assert expand(S, {"fast": "1:3:1"}, random=10) == expand(S, {"fast": "1:3:1"})
    with pytest.raises(GridError, match="--random must be >= 1"):
        expand(S, {"fast": "1:3:1"}, random=0)
