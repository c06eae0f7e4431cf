"""``/worlds``: create, list, read."""

from __future__ import annotations


def test_worlds_crud_and_errors(client):
    assert client.post("/worlds", json={"id": "w1"}).status_code == 409
    assert [w["id"] for w in client.get("/worlds").json()] == ["w1"]
    got = client.get("/worlds/w1").json()
    assert got["capital"] == 1e6 and got["policy_version"] == 1 and got["seq"] == 0
    r = client.get("/worlds/nope")
    assert r.status_code == 404 and r.json()["detail"] == "unknown world 'nope'"
    r = client.post("/worlds", json={"id": "bad id!"})
    assert r.status_code == 422 and "id" in r.json()["detail"]
