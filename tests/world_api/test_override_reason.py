"""An override's reason with a control character (a NUL, which PostgreSQL cannot store) is
the 422 every other text field gives, on both stores, and nothing is stored."""

from __future__ import annotations

import pytest

from tests.world_api.service.conftest import client, update  # noqa: F401


@pytest.mark.parametrize("reason", ["broker\x00outage", "two\nlines", "bell\x07"])
def test_a_reason_with_a_control_character_is_a_422(client, reason):  # noqa: F811
    client.post("/worlds/w1/metrics", json=[update("a", 1, 2.0)])
    r = client.put("/worlds/w1/strategies/a/override",
                   json={"state": "inactive", "reason": reason})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith("reason: must not contain control characters")
    assert client.get("/worlds/w1/overrides").json()["overrides"] == []
    ok = client.put("/worlds/w1/strategies/a/override",
                    json={"state": "inactive", "reason": "broker outage"})
    assert ok.status_code == 200
