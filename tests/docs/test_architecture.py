"""Imports point down: every import of every module of the project keeps to the table
"What each package may import" of docs/architecture.md."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.docs.markdown_blocks import ROOT

FIRST_PARTY = ("qmtl", "dataflows", "connectors", "world_api")
NAME = re.compile(r"`([a-z_][a-z_.]*)`")



def allowed_imports(text: str) -> dict[str, set[str] | None]:
    """``package -> packages it may import`` (``None``: anything), from the page's table.

    >>> rules = allowed_imports("| package | may import |\\n|---|---|\\n"
    ...                         "| `a.b` | `c`, `d` (and numpy) |\\n| `e` | anything |\\n")
    >>> sorted(rules["a.b"]), rules["e"]
    (['c', 'd'], None)
    """
    start = text.index("| package | may import |")
    out: dict[str, set[str] | None] = {}
    for line in text[start:].splitlines()[2:]:
        if not line.startswith("|"):
            break
        package, may = (cell.strip() for cell in line.strip("|").split("|"))
        name = NAME.fullmatch(package)
        assert name, f"architecture.md: bad package cell {package!r}"
        out[name.group(1)] = None if may == "anything" else set(NAME.findall(may))
    return out


def package_of(module: str, packages: list[str]) -> str | None:
    """The longest listed package that ``module`` is or lies in.

    >>> package_of("qmtl.core.expr", ["qmtl", "qmtl.core"]), package_of("x", ["qmtl"])
    ('qmtl.core', None)
    """
    hits = [p for p in packages if module == p or module.startswith(p + ".")]
    return max(hits, key=len) if hits else None


def imports(path: Path) -> list[str]:
    """Every absolute first-party module ``path`` imports, wherever the import is."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append(node.module)
    return [m for m in out if m.split(".")[0] in FIRST_PARTY]


def test_imports_point_down() -> None:
    rules = allowed_imports((ROOT / "docs" / "architecture.md").read_text(encoding="utf-8"))
    packages = list(rules)
    bad, unplaced = [], []
    for top in FIRST_PARTY:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            module = rel.removesuffix(".py").removesuffix("/__init__").replace("/", ".")
            mine = package_of(module, packages)
            if mine is None:
                if module not in ("connectors", "world_api"):
                    unplaced.append(rel)
                continue
            allowed = rules[mine]
            for imported in imports(path):
                theirs = package_of(imported, packages)
                if allowed is None or theirs in (mine, None) or theirs in allowed:
                    continue
                bad.append(f"{rel} ({mine}) imports {imported} ({theirs})")
    assert not unplaced, f"modules in no package of the architecture page's table: {unplaced}"
    assert not bad, "imports that point up or sideways:\n" + "\n".join(bad)
