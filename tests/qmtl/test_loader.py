"""Loading strategy files: each kind of mistake gets a message that says where."""

from __future__ import annotations

import pytest

from qmtl.loader import LoadError, load_strategy

GOOD = """
from qmtl import Strategy

class A(Strategy):
    def signal(self, bars):
        return 1.0

class B(Strategy):
    def signal(self, bars):
        return 0.0
"""


def test_picks_class_by_name(tmp_path):
    f = tmp_path / "s.py"
    f.write_text(GOOD)
    assert load_strategy(f"{f}:B").__name__ == "B"


def test_several_classes_need_a_name(tmp_path):
    f = tmp_path / "s.py"
    f.write_text(GOOD)
    with pytest.raises(LoadError, match=r"several Strategy classes .*\(A, B\)"):
        load_strategy(str(f))
    with pytest.raises(LoadError, match=r"no Strategy class 'C'.*found: A, B"):
        load_strategy(f"{f}:C")


def test_syntax_error_names_file_and_line(tmp_path):
    f = tmp_path / "bad.py"
    f.write_text("from qmtl import Strategy\n\nclass A(Strategy)\n    pass\n")
    with pytest.raises(LoadError, match=r"syntax error in .*bad.py:3"):
        load_strategy(str(f))


def test_runtime_error_names_line(tmp_path):
    f = tmp_path / "boom.py"
    f.write_text("x = 1\ny = 1 / 0\n")
    with pytest.raises(LoadError, match=r"boom.py:2: ZeroDivisionError"):
        load_strategy(str(f))


def test_a_typo_at_load_time_carries_pythons_hint(tmp_path):
    f = tmp_path / "typo.py"
    f.write_text("import math\n\nfrom qmtl import Strategy\n\nclass A(Strategy):\n"
                 "    slow: int = 5\n    fast: int = math.flor(slow / 2)\n")
    with pytest.raises(LoadError) as info:
        load_strategy(str(f))
    assert str(info.value) == (
        f"error while loading {f}:7: AttributeError: module 'math' has no attribute 'flor'. "
        "Did you mean: 'floor'?")


def test_no_class_and_missing_file(tmp_path):
    f = tmp_path / "empty.py"
    f.write_text("x = 1\n")
    with pytest.raises(LoadError, match="no Strategy subclass"):
        load_strategy(str(f))
    with pytest.raises(LoadError, match="not found"):
        load_strategy(str(tmp_path / "nope.py"))
