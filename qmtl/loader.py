"""Load a strategy class from ``FILE.py[:Class]`` with errors a person can act on.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> _ = (d / "s.py").write_text(
...     "from qmtl import Strategy\\n"
...     "class A(Strategy):\\n    def signal(self, bars):\\n        return 1.0\\n")
>>> load_strategy(str(d / "s.py")).__name__
'A'
>>> _ = (d / "bad.py").write_text("def f(:\\n")
>>> load_strategy(str(d / "bad.py"))
Traceback (most recent call last):
...
qmtl.loader.LoadError: syntax error in .../bad.py:1: invalid syntax
"""

from __future__ import annotations

import hashlib
import importlib.util
import inspect
import sys
import traceback
from pathlib import Path

from qmtl.core.errors import QmtlError
from qmtl.strategy import Strategy
from qmtl.usercode import exception_line


class LoadError(QmtlError, ValueError):
    """The strategy file or class could not be loaded."""


def split_target(target: str) -> tuple[Path, str | None]:
    """Split ``path/to/file.py:ClassName`` into the path and the optional class name.

    >>> split_target("s.py:SmaCross")
    (PosixPath('s.py'), 'SmaCross')
    """
    path, _, cls = target.partition(":") if target.count(":") == 1 else (target, "", "")
    return Path(path), (cls or None)


def load_strategy(target: str) -> type[Strategy]:
    """The Strategy subclass named by ``target`` (``FILE.py`` or ``FILE.py:Class``)."""
    path, cls_name = split_target(target)
    if not path.is_file():
        raise LoadError(f"strategy file not found: {path}")
    # stable across processes: node content ids of user operators and pickled recovery state
    # refer to classes by module name, so a restarted run must load the file under the same one
    digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    module_name = f"qmtl_user_{digest}"
    try:
        source = path.read_text()
        code = compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise LoadError(f"syntax error in {path}:{exc.lineno}: {exc.msg}") from None
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        exec(code, module.__dict__)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        where = f"{path}:{frames[-1].lineno}" if frames else str(path)
        raise LoadError(f"error while loading {where}: {exception_line(exc)}") from None
    classes = {
        name: obj
        for name, obj in vars(module).items()
        if inspect.isclass(obj)
        and issubclass(obj, Strategy)
        and obj is not Strategy
        and obj.__module__ == module_name
    }
    if cls_name is not None:
        if cls_name not in classes:
            found = ", ".join(sorted(classes)) or "none"
            raise LoadError(f"no Strategy class {cls_name!r} in {path}; found: {found}")
        return classes[cls_name]
    if not classes:
        raise LoadError(f"no Strategy subclass in {path}: define `class X(Strategy)`")
    if len(classes) > 1:
        names = ", ".join(sorted(classes))
        raise LoadError(f"several Strategy classes in {path} ({names}): pick one with {path}:Name")
    return next(iter(classes.values()))
