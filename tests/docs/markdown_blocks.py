"""The fenced code blocks of the project's Markdown (README.md and docs/), for the docs tests.

Every fence names its language. ``python`` blocks run under the test suite: a page's blocks in
order, in one namespace (like a doctest file). A Python block that cannot run here (it needs a
broker or a server) is preceded by an HTML comment ``<!-- no-run: why -->``, which MkDocs does
not show; every other language (``bash``, ``yaml``, ``json``, ``sql``, ``text``) is shown only.

>>> blocks = fences("Intro\\n\\n```python\\nx = 1\\n```\\n\\n<!-- no-run: needs Kafka -->\\n"
...                 "```python\\nconsume()\\n```\\n", "page.md")
>>> [(b.lang, b.line, b.runs) for b in blocks]
[('python', 4, True), ('python', 9, False)]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parents[2]
"""The repository's root."""

LANGUAGES = frozenset({"python", "bash", "yaml", "json", "sql", "text"})
"""Languages a fence may name; only ``python`` runs."""


@dataclass(frozen=True)
class Fence:
    """One fenced block: where it is, its language, its text, and whether the suite runs it.

    >>> Fence("README.md", 3, "python", "x = 1\\n", True).where
    'README.md:3'
    """

    path: str
    line: int
    lang: str
    source: str
    runs: bool

    @property
    def where(self) -> str:
        """``path:line`` of the block's first line of code."""
        return f"{self.path}:{self.line}"


def fences(text: str, path: str) -> list[Fence]:
    """The fenced blocks of Markdown ``text`` (``path`` names it in messages), in order."""
    tokens = MarkdownIt("commonmark").parse(text)
    out = []
    for i, tok in enumerate(tokens):
        if tok.type != "fence" or tok.map is None:
            continue
        lang = tok.info.strip().split(" ")[0] if tok.info.strip() else ""
        before = tokens[i - 1] if i else None
        no_run = (
            before is not None
            and before.type == "html_block"
            and before.content.strip().startswith("<!-- no-run:")
        )
        out.append(Fence(path, tok.map[0] + 2, lang, tok.content, lang == "python" and not no_run))
    return out


def doc_pages() -> list[Path]:
    """README.md and every page under docs/, README first."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def page_fences(page: Path) -> list[Fence]:
    """The fenced blocks of one page, named by its path relative to the repository."""
    return fences(page.read_text(encoding="utf-8"), str(page.relative_to(ROOT)))
