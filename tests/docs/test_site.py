"""The MkDocs site builds with ``--strict`` (no broken link or anchor), the README's links
land inside the repository, and CI runs exactly the README's second command."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests import procs
from tests.docs.markdown_blocks import ROOT, page_fences

LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_mkdocs_build_strict(tmp_path: Path) -> None:
    proc = procs.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
         "--config-file", str(ROOT / "mkdocs.yml"), "--site-dir", str(tmp_path / "site")],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for page in ("index", "getting-started", "strategies", "architecture", "data", "live",
                 "world", "performance", "cli"):
        assert (tmp_path / "site" / page / "index.html").exists() or page == "index", page
    assert (tmp_path / "site" / "index.html").exists()


def test_readme_links_point_into_the_repository() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    links = [link for link in LINK.findall(text) if not link.startswith(("http://", "https://"))]
    assert links, "the README links into the docs"
    for link in links:
        target = (ROOT / link.split("#")[0]).resolve()
        assert target.is_relative_to(ROOT), f"README link {link} leaves the repository"
        assert target.exists(), f"README link {link}: no such file"


def test_readme_is_a_front_page_of_at_most_300_lines() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 300, f"README.md has {len(lines)} lines; move the rest into docs/"


def test_ci_runs_the_readmes_second_command() -> None:
    bash = [f.source.strip() for f in page_fences(ROOT / "README.md") if f.lang == "bash"]
    install_and_demo, install_and_test = bash[0], bash[1]
    assert "qmtl data demo" in install_and_demo and "qmtl run" in install_and_demo
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").strip().splitlines()[-1]
    assert ci == install_and_test, f".ci/run runs {ci!r}, the README says {install_and_test!r}"


def test_no_page_points_outside_the_repository() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    for page in pages:
        text = page.read_text(encoding="utf-8")
        for needle in ("/work/", "shared folder", "shared/DESIGN"):
            assert needle not in text, f"{page.relative_to(ROOT)} points outside the repo: {needle}"
