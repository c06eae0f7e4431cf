"""The docs' Python blocks run, each page's in order in one namespace, in a scratch folder.

A block that needs data makes it (``connectors.data.synthetic``); ``QMTL_DATA`` and ``HOME``
point into the test's temp folder, so nothing a page runs touches the user's catalog.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.docs.markdown_blocks import LANGUAGES, ROOT, doc_pages, fences, page_fences

PAGES = doc_pages()


def _id(page: Path) -> str:
    return str(page.relative_to(ROOT))


@pytest.mark.parametrize("page", PAGES, ids=_id)
def test_every_fence_names_a_known_language(page: Path) -> None:
    bad = [f"{f.where}: {f.lang or 'no language'}" for f in page_fences(page)
           if f.lang not in LANGUAGES]
    assert not bad, f"fences must name one of {sorted(LANGUAGES)}: {bad}"


RUNNABLE = [page for page in PAGES if any(f.runs for f in page_fences(page))]


def test_some_pages_have_python_blocks_to_run() -> None:
    assert len(RUNNABLE) >= 5, [_id(p) for p in RUNNABLE]


@pytest.mark.parametrize("page", RUNNABLE, ids=_id)
def test_python_blocks_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocks = [f for f in page_fences(page) if f.runs]
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("QMTL_DATA", str(tmp_path / "data"))
    for var in ("QMTL_ORIGIN", "QMTL_QUESTDB", "QMTL_QUESTDB_ILP", "QMTL_WORLD_URL"):
        monkeypatch.delenv(var, raising=False)
    namespace: dict[str, object] = {"__name__": "docs_" + re.sub(r"\W", "_", _id(page))}
    for block in blocks:
        # pad so that a traceback's line numbers are the page's own
        code = compile("\n" * (block.line - 1) + block.source, str(ROOT / block.path), "exec")
        try:
            exec(code, namespace)
        except Exception as exc:
            raise AssertionError(f"the block at {block.where} failed: {exc!r}") from exc


def test_a_no_run_comment_stops_the_block_from_running() -> None:
    text = "<!-- no-run: needs Kafka -->\n```python\nraise SystemExit\n```\n"
    assert [f.runs for f in fences(text, "x.md")] == [False]
    assert [f.runs for f in fences("```python\npass\n```\n", "x.md")] == [True]
    assert [f.runs for f in fences("```bash\nls\n```\n", "x.md")] == [False]
