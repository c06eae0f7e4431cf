"""A groups file: a CSV with a header, the symbol first and one column per group level
(``symbol,sector,industry,subindustry``), read into the levels an alpha uses:
``group_neutralize(x, group)`` and ``neutralize="group"`` use the first level,
``indneutralize(x, IndClass.industry)`` the level of that name.

>>> import os, tempfile
>>> p = os.path.join(tempfile.mkdtemp(), "groups.csv")
>>> _ = open(p, "w").write("symbol,sector,industry\\nAAPL,tech,hardware\\nXOM,energy,oil\\n")
>>> levels_from_csv(p)
{'sector': {'AAPL': 'tech', 'XOM': 'energy'}, 'industry': {'AAPL': 'hardware', 'XOM': 'oil'}}
"""

from __future__ import annotations

import csv
from pathlib import Path

__all__ = ["levels_from_csv"]


def levels_from_csv(path: str | Path) -> dict[str, dict[str, str]]:
    """The group levels of a groups file (see the module docstring); a malformed file is a
    ValueError naming the file and line.

    >>> import os, tempfile
    >>> p = os.path.join(tempfile.mkdtemp(), "g.csv")
    >>> _ = open(p, "w").write("symbol,sector\\nAAPL\\n")
    >>> levels_from_csv(p)
    Traceback (most recent call last):
    ...
    ValueError: ...g.csv:2: expected 2 values (symbol,sector), got 'AAPL'
    """
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or len(rows[0]) < 2:
        raise ValueError(f"{path}: a groups file has a header: symbol and one column per "
                         "group level (symbol,sector,...)")
    names = [h.strip() for h in rows[0][1:]]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise ValueError(f"{path}:1: group level names must be non-empty and distinct, got "
                         f"{','.join(rows[0])!r}")
    levels: dict[str, dict[str, str]] = {n: {} for n in names}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        cells = [c.strip() for c in row]
        if len(cells) != len(names) + 1 or not all(cells):
            raise ValueError(f"{path}:{line}: expected {len(names) + 1} values "
                             f"({','.join(rows[0])}), got {','.join(row)!r}")
        if cells[0] in levels[names[0]]:
            raise ValueError(f"{path}:{line}: symbol {cells[0]!r} listed twice")
        for name, value in zip(names, cells[1:], strict=True):
            levels[name][cells[0]] = value
    return levels
