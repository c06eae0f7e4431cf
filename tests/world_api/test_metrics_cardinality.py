"""``/metrics`` of the real ``qmtl world serve``: bad posts to worlds that do not exist are
counted under one ``world="_unknown"`` label, not a series per path; a world that exists
keeps its own label."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.world_api.test_tls import qmtl_serve

pytestmark = pytest.mark.timeout(120)


def test_bad_posts_to_unknown_worlds_do_not_grow_the_labels(tmp_path):
    with qmtl_serve(str(tmp_path / "world.db"), "--insecure-dev") as port, \
            httpx.Client(base_url=f"http://127.0.0.1:{port}") as c:
        assert c.post("/worlds", json={"id": "real"}).status_code == 201
        for k in range(300):
            r = c.post(f"/worlds/ghost{k}/metrics", content=b"{not json")
            assert r.status_code == 422
            r = c.post(f"/worlds/ghost{k}/metrics", json={"world": "other"})
            assert r.status_code == 422
        assert c.post("/worlds/real/metrics", content=b"[1]").status_code == 422
        text = c.get("/metrics").text
    worlds = set(re.findall(r'world="([^"]*)"', text))
    assert worlds == {"_unknown", "real"}, sorted(worlds)[:10]
    unknown = re.search(r'qmtl_world_updates_rejected_total\{reason="invalid",'
                        r'world="_unknown"\} (\S+)', text)
    assert unknown and float(unknown.group(1)) == 600.0  # both kinds of bad body: invalid
    assert re.search(r'qmtl_world_updates_rejected_total\{reason="invalid",world="real"\} 1\.0',
                     text)
