"""The dev extras install a working set on a fresh machine, and keep doing so.

A fresh machine installs the newest release each range admits; a machine that installed
earlier keeps what it had. A new release of a test tool once broke the suite on every fresh
machine while older ones passed (pytest 9.2 against schemathesis 4.32's plugin). So every
requirement of the ``dev`` extra has an upper bound, the tools the suite runs on (pytest and
its plugins, hypothesis, schemathesis, ruff) are bounded at the next minor release, and the
environment running the suite satisfies the ranges ``pyproject.toml`` states: a machine
whose packages came from elsewhere is told, instead of passing or failing for reasons the
ranges do not show.
"""

from __future__ import annotations

import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]
# the tools that run the suite itself: a minor release of one can break another's plugin
TOOLS = {"pytest", "pytest-xdist", "pytest-timeout", "hypothesis", "schemathesis", "ruff"}


def dev_requirements() -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["optional-dependencies"]["dev"]]


def upper_bound(req: Requirement) -> Version | None:
    bounds = [Version(s.version) for s in req.specifier if s.operator in ("<", "<=", "==")]
    return min(bounds) if bounds else None


def test_every_dev_requirement_has_an_upper_bound():
    unbounded = [str(r) for r in dev_requirements() if upper_bound(r) is None]
    assert not unbounded, f"dev requirements without an upper bound: {unbounded}"


def test_the_suites_own_tools_are_bounded_at_the_next_minor_release():
    reqs = {r.name.lower(): r for r in dev_requirements()}
    assert TOOLS <= reqs.keys(), TOOLS - reqs.keys()
    loose = []
    for name in sorted(TOOLS):
        req = reqs[name]
        top = upper_bound(req)
        lows = [Version(s.version) for s in req.specifier if s.operator in (">=", ">", "==")]
        assert top is not None and lows, req
        # the range may span minor releases already known to work, but the bound must be
        # a minor release, not a major one (<10 admits 9.2, which broke schemathesis)
        if (len(top.release) < 2 or top.release[1] == 0) and top.major > max(lows).major:
            loose.append(str(req))
    assert not loose, f"bounded only at a major release: {loose}"


def test_the_installed_dev_tools_are_in_their_stated_ranges():
    wrong = []
    for req in dev_requirements():
        if req.marker is not None and not req.marker.evaluate():
            continue
        try:
            have = metadata.version(req.name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{req.name}: not installed (wanted {req.specifier})")
            continue
        if not req.specifier.contains(have, prereleases=True):
            wrong.append(f"{req.name} {have} is outside {req.specifier}")
    assert not wrong, ("the environment does not match pyproject.toml's dev extra "
                       f"(run pip install -e '.[dev]'): {wrong}")
