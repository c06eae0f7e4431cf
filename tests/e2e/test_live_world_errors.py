"""A live run whose world refuses it says what to do, in the command line's terms: a world
that does not exist (``QMTL_WORLD_URL`` set, no world ``local``) names the command that makes
it; a 401 names ``--token`` / ``QMTL_TOKEN``, not an HTTP header."""

from __future__ import annotations

import uuid

from typer.testing import CliRunner

from qmtl.cli import app
from tests.e2e.live_helpers import make_data, write_catalog
from tests.world_api.conftest import serve
from world_api.service.app import create_app

STRATEGY = (
    "from qmtl import Strategy\n\n\nclass Long(Strategy):\n    symbols = ['AAA']\n\n"
    "    def signal(self, bars):\n        return 1.0\n"
)


def _run(tmp_path, url: str) -> tuple[int, str]:
    write_catalog(tmp_path / "catalog", make_data(30, symbols=("AAA",)))
    path = tmp_path / "long.py"
    path.write_text(STRATEGY)
    out = CliRunner().invoke(
        app,
        [
            "run",
            "--mode",
            "live",
            str(path),
            "--paper",
            "--data",
            str(tmp_path / "catalog"),
            "--out",
            str(tmp_path / "out"),
            "--speed",
            "max",
        ],
        env={"QMTL_WORLD_URL": url, "QMTL_TOKEN": ""},
    )
    return out.exit_code, " ".join(out.output.split())


def test_a_missing_world_says_how_to_create_it(tmp_path):
    app_ = create_app(str(tmp_path / f"w-{uuid.uuid4().hex[:6]}.db"), insecure_dev=True)
    with serve(app_) as url:
        code, text = _run(tmp_path, url)
    assert code == 1, text
    assert "world 'local': GET /worlds/local: 404" in text, text
    assert f"create it with `qmtl world create local --url {url}`" in text, text


def test_a_401_says_to_pass_a_token(tmp_path):
    app_ = create_app(str(tmp_path / f"w-{uuid.uuid4().hex[:6]}.db"))
    with serve(app_) as url:
        code, text = _run(tmp_path, url)
    assert code == 1, text
    assert "answered 401" in text and "pass a token with --token or set QMTL_TOKEN" in text, text
    assert "Authorization" not in text, text
