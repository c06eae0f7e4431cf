"""``/worlds/{world}/policy``: versions, YAML and JSON, nothing half-written."""

from __future__ import annotations

from tests.world_api.service.conftest import POLICY_YAML


def test_policy_versions_yaml_and_json(client):
    r = client.put("/worlds/w1/policy", content=POLICY_YAML)
    assert r.status_code == 200 and r.json()["version"] == 2
    r = client.put("/worlds/w1/policy", json={"top_k": 3})
    assert r.json()["version"] == 3
    assert client.get("/worlds/w1/policy").json()["policy"]["top_k"] == 3
    assert client.get("/worlds/w1/policy", params={"version": 2}).json()["policy"]["top_k"] == 2
    assert client.get("/worlds/w1/policy", params={"version": 9}).status_code == 404
    r = client.put("/worlds/w1/policy", content="gates: {sharpee: '>= 1'}")
    assert r.status_code == 422
    assert "gates: sharpee: unknown metric" in r.json()["detail"]
    assert client.get("/worlds/w1").json()["policy_version"] == 3  # nothing half-written
