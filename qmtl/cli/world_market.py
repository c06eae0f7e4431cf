"""Reading a world's market file for ``qmtl world create --market`` and ``qmtl world market``:
the YAML or JSON of :mod:`world_api.domain.market`, whose universe may be given as a file of
symbols (``universe: {file: symbols.txt}``, relative to the market file: one symbol a line,
or ``SYMBOL,GROUP``; blank lines and ``#`` comments skipped), read here and sent as symbols.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "syms.txt").write_text("AAPL,tech\\nMSFT,tech\\n# none\\nXOM\\n")
>>> _ = (d / "m.yaml").write_text("universe: {file: syms.txt}\\ninterval: 1d\\n")
>>> m = read_market(d / "m.yaml")
>>> m["universe"]
{'symbols': ['AAPL', 'MSFT', 'XOM'], 'groups': {'tech': ['AAPL', 'MSFT']}}
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from qmtl.cli.common import console, fail
from qmtl.core.times import format_ts


def symbols_file(path: Path) -> dict[str, Any]:
    """``{"symbols", "groups"}`` from a file of symbols (see the module docstring)."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise fail(f"cannot read the universe file {path}: {exc}") from None
    symbols: list[str] = []
    groups: dict[str, list[str]] = {}
    for n, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        sym, _, group = (p.strip() for p in text.partition(","))
        if not sym:
            raise fail(f"{path}:{n}: no symbol before the comma")
        symbols.append(sym)
        if group:
            groups.setdefault(group, []).append(sym)
    return {"symbols": symbols, "groups": groups}


def read_market(path: Path) -> dict[str, Any]:
    """The market in ``path`` as data, its universe file read; checked by the world's own
    parser (a clear error naming the field)."""
    from world_api.domain import strict
    from world_api.domain.market import MarketError, parse_market

    try:
        text = path.read_text()
    except OSError as exc:
        raise fail(f"cannot read market file {path}: {exc}") from None
    try:
        data = strict.yaml_load(text)  # a repeated key is an error, as in the world
    except (strict.DuplicateKey, yaml.YAMLError) as exc:
        raise fail(f"{path}: not a market's YAML or JSON: {exc}") from None
    if not isinstance(data, dict):
        raise fail(f"{path}: a market is a mapping (universe, interval, window, ...)")
    uni = data.get("universe")
    if isinstance(uni, dict) and "file" in uni:
        data = {**data, "universe": symbols_file(path.parent / str(uni["file"]))}
    data = json.loads(json.dumps(data, default=str))  # dates as ISO text, as sent
    try:
        parse_market(data)
    except MarketError as exc:
        raise fail(f"{path}: invalid market: {exc}") from None
    return data


def set_market(
    client: Any, world: str, data: dict[str, Any], path: Path, created: bool = False
) -> None:
    """Declare ``data`` (read from ``path``) as ``world``'s market and say its version."""
    from world_api.client import WorldServiceError

    try:
        out = client.put_market(world, json.dumps(data))
    except WorldServiceError as exc:
        if not created:
            raise
        raise fail(
            f"created world {world!r}, but declaring its market from {path} failed: {exc}; "
            f"retry with `qmtl world market {world} {path}`"
        ) from None
    console.print(
        f"world {world!r}: market from {path} is version {out['version']}: {out['summary']}",
        highlight=False,
    )


def market_of(client: Any, world: str) -> str:
    """``v<version> · <summary>`` of ``world``'s market, or ``none (any symbols)``."""
    from world_api.client import NotFoundError

    try:
        out = client.market(world)
    except NotFoundError:
        return "none (any symbols)"
    return f"v{out['version']} · {out['summary']}"


def shared_line(pro_forma: dict[str, Any]) -> str:
    """What ``qmtl world status`` says of the bars the pro forma stands on (the bars every
    active strategy shares), from ``GET /worlds/{id}/metrics``' ``pro_forma``.

    >>> day = 86_400 * 10**9
    >>> shared_line({"shared_bars": 3, "first_shared": day, "last_shared": 3 * day})
    'the active strategies share 3 bars (1970-01-02T00:00:00Z to 1970-01-04T00:00:00Z): ...'
    >>> shared_line({"shared_bars": None})
    'no active strategy: no pro forma'
    """
    shared = pro_forma.get("shared_bars")
    if shared is None:
        return "no active strategy: no pro forma"
    first, last = pro_forma.get("first_shared"), pro_forma.get("last_shared")
    span = "" if first is None or last is None else f" ({format_ts(first)} to {format_ts(last)})"
    return (f"the active strategies share {shared} bars{span}: the pro forma and their "
            "correlations use only those")
