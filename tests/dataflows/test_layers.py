"""The engine's layers import downwards only: ``qmtl.core`` nothing of the project above it,
``dataflows`` only ``qmtl.core`` and itself (doctests included), and no module cycles (read
from the sources, function bodies included, so a late import cannot hide a cycle)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROJECT = ("qmtl", "dataflows", "connectors", "world_api", "bench", "tests")
DOCTEST_IMPORT = re.compile(r"^\s*>>> (?:from (\S+) import|import (\S+))", re.M)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, doctests: bool = True) -> list[tuple[str, bool]]:
    """(imported module, whether at module level) of a file; doctest imports count as not
    at module level (they keep a layer's examples inside it, but run no code at import)."""
    tree = ast.parse(path.read_text())
    top = set(map(id, tree.body))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, id(node) in top))
            # ``from pkg import mod`` imports the module pkg.mod when there is one
            out += [(f"{node.module}.{a.name}", id(node) in top) for a in node.names]
    for m in DOCTEST_IMPORT.finditer(path.read_text() if doctests else ""):
        out.append((m.group(1) or m.group(2), False))
    return out


def project_imports(path: Path) -> set[str]:
    return {name for name, _ in imports(path) if name.split(".")[0] in PROJECT}


CORE = sorted((ROOT / "qmtl" / "core").glob("*.py"))
ENGINE = sorted((ROOT / "dataflows").rglob("*.py"))


@pytest.mark.parametrize("path", CORE, ids=lambda p: p.name)
def test_core_imports_nothing_above_it(path):
    bad = {m for m in project_imports(path) if not m.startswith("qmtl.core")}
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", ENGINE, ids=lambda p: str(p.relative_to(ROOT)))
def test_engine_imports_only_core_and_itself(path):
    bad = {m for m in project_imports(path)
           if not (m.startswith("qmtl.core") or m.split(".")[0] == "dataflows")}
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("path", [*CORE, *ENGINE, ROOT / "qmtl" / "indicators.py"],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_project_imports_are_at_module_top(path):
    late = {name for name, top in imports(path)
            if not top and name.split(".")[0] in PROJECT
            and f">>> from {name} " not in path.read_text()
            and f">>> import {name}" not in path.read_text()}
    assert not late, f"{path.relative_to(ROOT)} imports {late} inside a function"


def test_no_import_cycle_between_expressions_indicators_and_engine():
    files = [*CORE, *ENGINE, ROOT / "qmtl" / "indicators.py"]
    names = {module_name(p): p for p in files}
    graph = {
        name: {m for m, _ in imports(path, doctests=False) if m in names and m != name}
        for name, path in names.items()
    }
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = [*trail[trail.index(nxt):], nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
