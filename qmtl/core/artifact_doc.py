"""The artifact format (pure: no code is loaded here): canonical JSON, content ids and the
checks a stored artifact must pass. What an artifact holds and how a runner rebuilds a
strategy from it is in :mod:`qmtl.artifact`; the world service uses only this module, so it
checks and stores artifacts without ever executing one.

>>> canonical_json({"b": 1, "a": [1.5, "x"]})
'{"a":[1.5,"x"],"b":1}'
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any

from qmtl.core.errors import QmtlError

ARTIFACT_VERSION = 1
"""The version of the artifact format this QMTL writes and reads."""

FILE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\.py")
"""What a stored file may be called (a plain module file name: nothing to escape with)."""

KINDS = ("spec", "source")


class ArtifactError(QmtlError, ValueError):
    """An artifact that cannot be built, read or loaded (the message says why).

    >>> check_artifact({"qmtl_artifact": 2})
    Traceback (most recent call last):
    ...
    qmtl.core.artifact_doc.ArtifactError: artifact version 2 is not supported: ...
    """


def canonical_json(doc: Any) -> str:
    """``doc`` as canonical JSON: sorted keys, no spaces, no NaN.

    >>> canonical_json({"b": 1, "a": [1.5, "x"]})
    '{"a":[1.5,"x"],"b":1}'
    """
    return json.dumps(
        doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def artifact_id(doc: Mapping[str, Any]) -> str:
    """The content id of an artifact: SHA-256 of its canonical JSON without ``id``.

    >>> artifact_id({"a": 1}) == artifact_id({"a": 1, "id": "x"})
    True
    """
    body = {k: v for k, v in doc.items() if k != "id"}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def check_artifact(doc: Any) -> dict[str, Any]:
    """``doc`` when it is a well-formed artifact whose ``id`` is its content id, else an
    :class:`ArtifactError` naming what is wrong.

    >>> check_artifact({"qmtl_artifact": 1, "kind": "zip"})
    Traceback (most recent call last):
    ...
    qmtl.core.artifact_doc.ArtifactError: artifact kind 'zip': use spec or source
    """
    if not isinstance(doc, dict):
        raise ArtifactError(f"an artifact is a JSON object, got {type(doc).__name__}")
    if doc.get("qmtl_artifact") != ARTIFACT_VERSION:
        raise ArtifactError(
            f"artifact version {doc.get('qmtl_artifact')!r} is not supported: "
            f"this QMTL reads version {ARTIFACT_VERSION}"
        )
    if doc.get("kind") not in KINDS:
        raise ArtifactError(f"artifact kind {doc.get('kind')!r}: use spec or source")
    for key, kind in (("strategy_id", str), ("graph_id", str), ("data", dict), ("id", str)):
        if not isinstance(doc.get(key), kind):
            raise ArtifactError(f"artifact field {key!r} must be a {kind.__name__}")
    if doc["kind"] == "spec" and not isinstance(doc.get("spec"), dict):
        raise ArtifactError("a spec artifact needs 'spec' (a JSON object)")
    if doc["kind"] == "source":
        files = doc.get("files")
        if not isinstance(files, dict) or not files:
            raise ArtifactError("a source artifact needs 'files' ({name: text})")
        for name, text in files.items():
            if not FILE_NAME.fullmatch(str(name)) or not isinstance(text, str):
                raise ArtifactError(
                    f"artifact file {name!r}: a plain module name "
                    "(letters, digits, _ and .py) and its text"
                )
        if doc.get("module_file") not in files or not isinstance(doc.get("class"), str):
            raise ArtifactError(
                "a source artifact needs 'module_file' (one of its files) and 'class'"
            )
        if not isinstance(doc.get("params", {}), dict):
            raise ArtifactError("artifact field 'params' must be an object")
    want = artifact_id(doc)
    if doc["id"] != want:
        raise ArtifactError(
            f"artifact id {doc['id']} is not its content id {want} (it was "
            "changed after it was built)"
        )
    return doc


def metadata(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What a viewer may see of an artifact: everything but the code (files, spec).

    >>> metadata({"id": "x", "files": {"s.py": "..."}, "spec": {}})
    {'id': 'x'}
    """
    return {k: v for k, v in doc.items() if k not in ("files", "spec", "params", "settings")}
