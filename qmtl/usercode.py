"""Point at the user's own code when it fails: the file and line, and Python's hint.

A mistake in a strategy (``bars.clsoe`` in ``signal``, a typo in an Operator's ``update`` or
in a ``rolling(...).apply`` lambda) surfaces deep inside the engine. :func:`user_frame` (or
:func:`code_frame`) finds the user's ``file:line`` on the traceback (the deepest frame that
is not QMTL, the standard library or an installed package), and :func:`exception_line` gives
the exception with Python's own suggestion (``Did you mean: 'close'?``), which Python 3.11
prints only in its default traceback display.

>>> class Bars:
...     close = 1.0
>>> try:
...     Bars().clsoe
... except AttributeError as exc:
...     print(exception_line(exc))
AttributeError: 'Bars' object has no attribute 'clsoe'. Did you mean: 'close'?
"""

from __future__ import annotations

import io
import sys
import sysconfig
import traceback
from collections.abc import Collection, Iterable
from pathlib import Path
from traceback import FrameSummary
from types import CodeType

from qmtl.core.expr import Expr
from qmtl.core.expr_nodes import walk

LIBRARY_ROOTS: tuple[str, ...] = tuple(
    sorted(
        {
            *(str(Path(__file__).resolve().parents[1] / pkg) for pkg in
              ("qmtl", "dataflows", "connectors", "world_api")),
            *(
                str(Path(p).resolve())
                for key in ("stdlib", "platstdlib", "purelib", "platlib")
                if (p := sysconfig.get_paths().get(key))
            ),
        }
    )
)
"""Folders whose code is not the user's: QMTL's packages, the standard library and
installed packages."""


def is_user_file(filename: str) -> bool:
    """Whether code from ``filename`` is the user's (not QMTL, the standard library or an
    installed package; not generated code such as ``<string>``).

    >>> is_user_file(__file__), is_user_file("/home/me/strategies/sma.py")
    (False, True)
    """
    if filename.startswith("<"):
        return False
    try:
        resolved = str(Path(filename).resolve())
    except OSError:
        return False
    return not any(resolved == root or resolved.startswith(root + "/") for root in LIBRARY_ROOTS)


def user_frame(exc: BaseException, files: Collection[str] | None = None) -> FrameSummary | None:
    """The deepest frame of ``exc``'s traceback in the user's code: in one of ``files`` when
    given, else in any file :func:`is_user_file` accepts; None if there is none.

    >>> try:
    ...     int("x")
    ... except ValueError as exc:
    ...     user_frame(exc), user_frame(exc, files=[__file__])
    (None, None)
    """
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if (frame.filename in files) if files is not None else is_user_file(frame.filename):
            return frame
    return None


def exception_line(exc: BaseException) -> str:
    """``Type: message`` of ``exc`` with the suggestion Python adds to a name or attribute
    error (``Did you mean: 'close'?``), as the interpreter would print it.

    >>> exception_line(KeyError("fast"))
    "KeyError: 'fast'"
    """
    line = "".join(traceback.format_exception_only(type(exc), exc)).strip().splitlines()[-1]
    if not isinstance(exc, (AttributeError, NameError)) or "Did you mean" in line:
        return line
    # Python 3.11 computes the hint only in its C display of a traceback (3.12's traceback
    # module does it too): let that display write into a buffer and take the hint from it
    buffer, stderr = io.StringIO(), sys.stderr
    sys.stderr = buffer
    try:
        sys.__excepthook__(type(exc), exc, exc.__traceback__)
    finally:
        sys.stderr = stderr
    for shown in reversed(buffer.getvalue().splitlines()):
        if shown.startswith(line) and "Did you mean" in shown:
            return shown
    return line


def code_frame(exc: BaseException, codes: Collection[CodeType]) -> FrameSummary | None:
    """The deepest user frame of ``exc``'s traceback at or below the first frame that runs
    one of ``codes`` (see :func:`graph_code`); None when none of them is on the traceback.

    >>> def f():
    ...     return 1 / 0
    >>> try:
    ...     f()
    ... except ZeroDivisionError as exc:
    ...     code_frame(exc, {f.__code__}).name, code_frame(exc, set())
    ('f', None)
    """
    frames = list(traceback.walk_tb(exc.__traceback__))
    for i, (frame, _) in enumerate(frames):
        if frame.f_code in codes:
            mine = [(f, n) for f, n in frames[i + 1:] if is_user_file(f.f_code.co_filename)]
            frame, lineno = mine[-1] if mine else frames[i]
            return FrameSummary(frame.f_code.co_filename, lineno, frame.f_code.co_name)
    return None


def where(frame: FrameSummary) -> str:
    """``file:line (in function)`` of a frame.

    >>> where(FrameSummary("s.py", 9, "signal"))
    's.py:9 (in signal)'
    """
    return f"{frame.filename}:{frame.lineno} (in {frame.name})"


def graph_code(outputs: Iterable[Expr]) -> set[CodeType]:
    """The code a graph runs of the user's: the functions given to ``rolling(...).apply``
    and the methods of its custom operators' classes (not QMTL's own).

    >>> from qmtl.core.expr import col
    >>> f = lambda w: w[-1]
    >>> graph_code([col("close").rolling(3).apply(f)]) == {f.__code__}
    True
    >>> graph_code([col("close").rolling(3).apply(max)])
    set()
    """
    codes: set[CodeType] = set()
    for node in walk(outputs):
        if node.op == "rolling_apply":
            code = getattr(node.params.get("fn"), "__code__", None)
            if code is not None:
                codes.add(code)
        elif node.op == "custom":
            for klass in node.params["cls"].__mro__:
                for member in vars(klass).values():
                    func = getattr(member, "__func__", member)  # static/class methods
                    code = getattr(func, "__code__", None)
                    if code is not None and is_user_file(code.co_filename):
                        codes.add(code)
    return codes
