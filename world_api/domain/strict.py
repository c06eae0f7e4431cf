"""JSON and YAML loaders that refuse a mapping with the same key twice (pure: no I/O).

``json.loads`` and ``yaml.safe_load`` keep the last of two equal keys silently, so
``{"top_k": 1, "top_k": 50}`` would be read as 50 without a word. These raise
:class:`DuplicateKey` naming the key and where it is instead (the service answers 422, the
CLI exits with the message).

>>> loads('{"a": 1, "b": {"c": 2}}')
{'a': 1, 'b': {'c': 2}}
>>> try:
...     loads('{"top_k": 1, "top_k": 50}')
... except DuplicateKey as exc:
...     print(exc)
duplicate key 'top_k' in a JSON object (the last one would win silently)
>>> try:
...     yaml_load("gates:\\n  sharpe: '>= 1'\\n  sharpe: '>= 0'\\n")
... except DuplicateKey as exc:
...     print(exc)
duplicate key 'sharpe' at line 3, column 3 (the last one would win silently)
"""

from __future__ import annotations

import json
from typing import Any

import yaml


class DuplicateKey(ValueError):
    """A mapping holds the same key twice.

    >>> DuplicateKey("duplicate key 'a'").args[0]
    "duplicate key 'a'"
    """


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise DuplicateKey(
                f"duplicate key {k!r} in a JSON object (the last one would win silently)"
            )
        out[k] = v
    return out


def loads(text: str | bytes) -> Any:
    """``json.loads`` that raises :class:`DuplicateKey` on a repeated key (any depth).

    >>> loads("[1, 2]")
    [1, 2]
    """
    return json.loads(text, object_pairs_hook=_pairs)


def _check(pairs: list[tuple[str, Any]]) -> None:
    if len(pairs) > 1 and len({k for k, _ in pairs}) != len(pairs):
        _pairs(pairs)  # names the key


def check_json(text: str | bytes) -> None:
    """Raise :class:`DuplicateKey` when the JSON ``text`` repeats a key in an object (a
    check only, cheaper than :func:`loads`: no value is kept; malformed JSON is left to the
    caller's own parser, and passes here).

    >>> check_json('[{"a": 1}, {"a": 2}]') is None
    True
    >>> try:
    ...     check_json('{"a": 1, "b": {"c": 1, "c": 2}}')
    ... except DuplicateKey as exc:
    ...     print(str(exc)[:17])
    duplicate key 'c'
    """
    try:
        json.loads(text, object_pairs_hook=_check)
    except DuplicateKey:
        raise
    except (ValueError, RecursionError):
        return


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` whose mappings refuse a repeated key."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                repeated = key in seen
            except TypeError:  # an unhashable key: SafeLoader reports it
                break
            if repeated:
                mark = key_node.start_mark
                raise DuplicateKey(
                    f"duplicate key {key!r} at line {mark.line + 1}, column "
                    f"{mark.column + 1} (the last one would win silently)"
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def yaml_load(text: str) -> Any:
    """``yaml.safe_load`` that raises :class:`DuplicateKey` on a repeated key.

    >>> yaml_load("a: 1\\nb: [1, 2]")
    {'a': 1, 'b': [1, 2]}
    """
    return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass


def load_document(text: str, what: str, error: type[Exception], too_deep: str) -> Any:
    """``text`` as JSON, else as YAML, a repeated key refused in either: the one reading of a
    policy's and a market's documents. Failures raise ``error`` with a message that starts
    with ``what`` (``too_deep`` when the document nests past the parser's limit).

    >>> load_document("a: 1", "policy", ValueError, "too deep")
    {'a': 1}
    >>> load_document("a: 1\\na: 2", "policy", ValueError, "too deep")
    Traceback (most recent call last):
    ...
    ValueError: policy: duplicate key 'a' at line 2, column 1 (the last one would win silently)
    """
    try:
        try:
            return loads(text)
        except json.JSONDecodeError:
            return yaml_load(text)
    except DuplicateKey as exc:
        raise error(f"{what}: {exc}") from None
    except yaml.YAMLError as exc:
        raise error(f"{what} is neither valid JSON nor YAML: {exc}") from None
    except RecursionError:
        raise error(too_deep) from None
