"""The browser fixture itself: a local page loads, an outside request is cut and seen."""

from __future__ import annotations

import http.server
import threading
from pathlib import Path

from tests.browser.conftest import console_errors, outside_requests, screenshot


def _serve(folder: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(  # noqa: E731
        *a, directory=str(folder), **k
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}"


def test_local_page_loads_and_outside_requests_are_cut_and_listed(browser, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "index.html").write_text(
        "<html><body><h1 id='t'>hello</h1>"
        "<script src='https://cdn.example.com/lib.js'></script>"
        "<script>document.getElementById('t').dataset.ok = typeof window.lib;</script>"
        "</body></html>"
    )
    server, base = _serve(site)
    try:
        browser.get(f"{base}/index.html")
        h1 = browser.find_element("id", "t")
        assert h1.text == "hello"
        # the CDN script never loaded: the internet is cut
        assert h1.get_attribute("data-ok") == "undefined"
        assert outside_requests(browser) == ["https://cdn.example.com/lib.js"]
        assert any("cdn.example.com" in m for m in console_errors(browser))
        assert screenshot(browser, tmp_path, "fixture").stat().st_size > 1000
    finally:
        server.shutdown()
