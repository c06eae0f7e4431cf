"""The nginx example in docs/security.md is the shipped ``docker/nginx.conf`` (less the
file's opening comment), so the page and what docker-compose.yml mounts cannot drift."""

from __future__ import annotations

from tests.docs.markdown_blocks import ROOT, page_fences


def test_the_security_page_shows_the_shipped_nginx_config() -> None:
    conf = (ROOT / "docker" / "nginx.conf").read_text()
    shipped = "\n".join(line for line in conf.splitlines() if not line.startswith("#"))
    shown = [
        f.source for f in page_fences(ROOT / "docs" / "security.md") if "proxy_pass" in f.source
    ]
    assert len(shown) == 1, "docs/security.md should show one nginx example"
    assert shown[0].strip() == shipped.strip()
    # the bounds it adds on top of the service's, and what the service then expects
    for directive in (
        "limit_conn ",
        "limit_req ",
        "client_header_timeout",
        "client_body_timeout",
        "proxy_buffering off",
    ):
        assert directive in shipped
    assert "--max-connections-per-client 0" in conf
