"""Strategy artifacts: what a world holds of a strategy it evaluated, so that a runner can
run exactly that (see ``docs/security.md`` and ``docs/live.md``).

An artifact is a JSON document: for a graph-only strategy (an alpha, a spec, a
:class:`~qmtl.alpha.spec.GraphStrategy`) its spec (:meth:`Strategy.to_spec`); else the
text of the strategy's source files, its module file and class, its parameters and its
settings. Both carry the data it needs (symbols, interval, context symbols, warm-up, the
graph's look-back) and ``graph_id``: the content id of the strategy's graph with its
trading settings (:func:`graph_id`). The artifact's own ``id`` is the SHA-256 of its
canonical JSON without ``id`` (:func:`artifact_id`), as dataset fingerprints are.

:func:`load_artifact` rebuilds the strategy from the stored text only (the files are
written into a folder of the runner's and loaded with :func:`qmtl.loader.load_strategy`),
never from the developer's disk; :func:`verify` also checks that the rebuilt graph has the
stored ``graph_id`` and raises :class:`ArtifactChanged` when it does not.

>>> from qmtl.core.expr import col
>>> from qmtl.alpha.spec import GraphStrategy
>>> doc = build_artifact(GraphStrategy(col("close") > 0, name="up", symbols=["A"]))
>>> doc["kind"], doc["data"]["symbols"], doc["id"] == artifact_id(doc)
('spec', ['A'], True)
>>> verify(doc, Path(".")).name
'up'
"""

from __future__ import annotations

import inspect
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from qmtl.alpha.spec import from_spec
from qmtl.core.artifact_doc import (
    ARTIFACT_VERSION,
    FILE_NAME,
    ArtifactError,
    artifact_id,
    canonical_json,
    check_artifact,
    metadata,
)
from qmtl.core.expr_nodes import content_id
from qmtl.loader import load_strategy
from qmtl.strategy import EXECUTION_SETTINGS, Strategy, strategy_files

SETTINGS: tuple[str, ...] = (
    "cost_bps",
    "max_gross",
    "max_net",
    "warmup",
    "calendar",
    *EXECUTION_SETTINGS,
)
"""Instance settings a source artifact keeps besides the parameters."""

__all__ = [
    "ARTIFACT_VERSION",
    "ArtifactChanged",
    "ArtifactError",
    "artifact_id",
    "build_artifact",
    "canonical_json",
    "check_artifact",
    "graph_id",
    "load_artifact",
    "metadata",
    "verify",
]


class ArtifactChanged(ArtifactError):
    """The strategy an artifact rebuilds is not the one the world evaluated.

    >>> str(ArtifactChanged("s", "a", "b"))
    'strategy s changed since it was evaluated: graph id a != b'
    """

    def __init__(self, strategy: str, stored: str, built: str) -> None:
        super().__init__(
            f"strategy {strategy} changed since it was evaluated: graph id {stored} != {built}"
        )
        self.strategy, self.stored, self.built = strategy, stored, built


def _json_value(v: Any) -> Any:
    if isinstance(v, float) and math.isinf(v):
        return None
    return v


def graph_id(s: Strategy, symbols: list[str] | None = None) -> str:
    """The content id of what ``s`` trades: its weight graph with its universe, interval,
    context and trading settings (a change of code or of any parameter changes it).

    >>> from qmtl.alpha.spec import GraphStrategy
    >>> from qmtl.core.expr import col
    >>> a = GraphStrategy(col("close") > 0, symbols=["A"])
    >>> graph_id(a) == graph_id(GraphStrategy(col("close") > 0, symbols=["A"]))
    True
    >>> graph_id(a) == graph_id(GraphStrategy(col("close") > 1, symbols=["A"]))
    False
    """
    exe = s.execution_settings()
    settings = {
        "symbols": list(symbols if symbols is not None else s.symbols),
        "interval": s.interval,
        "context": list(s.context),
        "cost_bps": float(s.cost_bps),
        "max_gross": float(s.max_gross),
        "max_net": _json_value(float(s.max_net)),
        "execution": {k: getattr(exe, k) for k in sorted(vars(exe))},
    }
    return content_id("strategy", settings, [s.target().id])


def _data_needs(s: Strategy, symbols: list[str]) -> dict[str, Any]:
    return {
        "symbols": symbols,
        "interval": s.interval,
        "context": list(s.context),
        "warmup": s.warmup,
        "lookback": int(s.target().lookback),
    }


def _plain(name: str, value: Any, where: str) -> Any:
    value = _json_value(value)
    try:
        canonical_json(value)
    except (TypeError, ValueError):
        raise ArtifactError(
            f"{where} {name!r} = {value!r} cannot be stored in an artifact "
            "(only JSON values: numbers, text, lists, mappings)"
        ) from None
    return value


def build_artifact(
    s: Strategy, strategy_id: str | None = None, symbols: list[str] | None = None
) -> dict[str, Any]:
    """The artifact of strategy instance ``s`` (traded on ``symbols``, default its own),
    under ``strategy_id`` (default its name); see the module docstring.

    >>> class Local(Strategy):  # defined here, in no file a runner could be given
    ...     fast: int = 3
    ...     def signal(self, bars):
    ...         return bars.close.sma(self.fast) > bars.close
    >>> build_artifact(Local(), symbols=["A"])["kind"]
    'spec'
    """
    universe = list(symbols if symbols is not None else s.symbols)
    doc: dict[str, Any] = {
        "qmtl_artifact": ARTIFACT_VERSION,
        "strategy_id": strategy_id or s.name,
        "name": s.name,
        "data": _data_needs(s, universe),
        "graph_id": graph_id(s, universe),
    }
    files = sorted(strategy_files(s))
    if not files:  # an alpha, a spec or a class defined where no file holds it
        try:
            doc.update(kind="spec", spec=s.to_spec())
        except Exception as exc:
            raise ArtifactError(f"{s.name}: no source file and no spec to store: {exc}") from None
    else:
        main = Path(inspect.getfile(type(s)))
        stored: dict[str, str] = {}
        for f in files:
            name = Path(f).name
            if name in stored or not FILE_NAME.fullmatch(name):
                raise ArtifactError(
                    f"{s.name}: cannot store {f}: artifact files need distinct "
                    "plain module names (letters, digits, _ and .py)"
                )
            stored[name] = Path(f).read_text()
        doc.update(
            kind="source",
            files=stored,
            module_file=main.name,
            **{"class": type(s).__name__},
            params={k: _plain(k, getattr(s, k), "parameter") for k in type(s).parameters()},
            settings={k: _plain(k, getattr(s, k), "setting") for k in SETTINGS},
        )
    doc["id"] = artifact_id(doc)
    return doc


def load_artifact(doc: Mapping[str, Any], workdir: Path) -> Strategy:
    """The strategy instance ``doc`` describes, rebuilt from its stored text (a source
    artifact's files are written under ``workdir/<id>`` and loaded from there).

    >>> load_artifact({"qmtl_artifact": 1}, Path("."))
    Traceback (most recent call last):
    ...
    qmtl.core.artifact_doc.ArtifactError: artifact kind None: use spec or source
    """
    d = check_artifact(dict(doc))
    if d["kind"] == "spec":
        return from_spec(d["spec"])
    folder = Path(workdir) / d["id"][:16]
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in d["files"].items():
        path = folder / name
        if not path.is_file() or path.read_text() != text:
            path.write_text(text)
    sys.path.insert(0, str(folder))  # a base class in a sibling stored file
    try:
        cls = load_strategy(f"{folder / d['module_file']}:{d['class']}")
    finally:
        sys.path.remove(str(folder))
    kwargs = {**d.get("settings", {}), **d.get("params", {})}
    kwargs = {k: v for k, v in kwargs.items() if not (k == "max_net" and v is None)}
    return cls(**kwargs)


def verify(doc: Mapping[str, Any], workdir: Path) -> Strategy:
    """:func:`load_artifact`, then check the rebuilt graph's id is the stored one
    (:class:`ArtifactChanged` when the code or a parameter changed).

    >>> from qmtl.alpha.spec import GraphStrategy
    >>> from qmtl.core.expr import col
    >>> doc = build_artifact(GraphStrategy(col("close") > 0, symbols=["A"]), "s")
    >>> doc["graph_id"] = "0" * 20; doc["id"] = artifact_id(doc)
    >>> verify(doc, Path("."))
    Traceback (most recent call last):
    ...
    qmtl.artifact.ArtifactChanged: strategy s changed since it was evaluated: graph id 000...
    """
    s = load_artifact(doc, workdir)
    built = graph_id(s, list(doc["data"]["symbols"]))
    if built != doc["graph_id"]:
        raise ArtifactChanged(str(doc["strategy_id"]), str(doc["graph_id"]), built)
    return s
