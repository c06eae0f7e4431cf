"""The OpenAPI schema tells the truth: the error body as the service sends it, the statuses
each operation answers, the bearer scheme, the raw request bodies and the event stream; the
schema and its pages are public while the API is not."""

from __future__ import annotations

from typing import Annotated

import pytest
from fastapi import APIRouter, Depends
from fastapi.testclient import TestClient

from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.deps import Actor, ViewerDep, require
from world_api.service.openapi import document, error_responses


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    a = create_app(str(tmp_path_factory.mktemp("oa") / "w.db"))
    yield a
    a.state.service.store.close()


@pytest.fixture(scope="module")
def spec(app):
    with TestClient(app) as c:
        r = c.get("/openapi.json")  # no token: the schema is public
    assert r.status_code == 200
    return r.json()


def op(spec, method: str, path: str) -> dict:
    return spec["paths"][path][method]


def error_ref(response: dict) -> str:
    return response["content"]["application/json"]["schema"]["$ref"]


def test_the_error_body_is_a_detail_string_as_sent(app, spec):
    assert spec["components"]["schemas"]["ErrorDetail"]["properties"]["detail"] == {
        "title": "Detail", "type": "string"}
    assert spec["components"]["schemas"]["ErrorDetail"]["required"] == ["detail"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, o in ops.items():
            for status, response in o["responses"].items():
                if status[0] in "45":
                    assert error_ref(response) == "#/components/schemas/ErrorDetail", (
                        method, path, status)
    with TestClient(app) as c:  # and the service does send a string for a 422
        tok = create_token(app.state.service.store, "operator", "t")
        r = c.get("/worlds/x/policy", params={"version": 0},
                  headers={"Authorization": f"Bearer {tok}"})
        assert r.status_code == 422 and isinstance(r.json()["detail"], str)


@pytest.mark.parametrize(("method", "path", "statuses"), [
    ("get", "/worlds", {"200", "401", "403", "500", "503"}),
    ("post", "/worlds", {"201", "400", "401", "403", "409", "413", "422", "500", "503"}),
    ("put", "/worlds/{world}/policy",
     {"200", "400", "401", "403", "404", "409", "413", "422", "500", "503"}),
    ("post", "/worlds/{world}/metrics",
     {"200", "400", "401", "403", "404", "409", "413", "422", "500", "503"}),
    ("post", "/worlds/{world}/allocations/apply",
     {"200", "400", "401", "403", "404", "409", "413", "422", "500", "503"}),
    ("get", "/worlds/{world}/audit", {"200", "401", "403", "404", "422", "500", "503"}),
    ("get", "/worlds/{world}/events", {"200", "401", "403", "404", "422", "500", "503"}),
])
def test_each_operation_declares_the_statuses_it_answers(spec, method, path, statuses):
    assert set(op(spec, method, path)["responses"]) == statuses


def test_the_bearer_scheme_is_declared_on_every_operation(spec):
    assert spec["components"]["securitySchemes"]["HTTPBearer"] == {
        "type": "http", "scheme": "bearer",
        "description": "A token from `qmtl world token create`."}
    for path, ops in spec["paths"].items():
        for o in ops.values():
            if path in ("/healthz", "/readyz", "/metrics"):  # public (see routers/health.py)
                assert "security" not in o
                continue
            assert o["security"] == [{"HTTPBearer": []}]
            assert "authorization" not in [p["name"].lower() for p in o.get("parameters", [])]


def test_raw_bodies_are_declared(spec):
    policy = op(spec, "put", "/worlds/{world}/policy")["requestBody"]
    assert policy["required"] is True
    assert set(policy["content"]) == {"application/json", "application/yaml"}
    assert "top_k" in policy["content"]["application/json"]["schema"]["properties"]
    assert policy["content"]["application/yaml"]["schema"] == {"type": "string"}
    metrics = op(spec, "post", "/worlds/{world}/metrics")["requestBody"]["content"]
    one_or_many = metrics["application/json"]["schema"]["anyOf"]
    assert one_or_many == [{"$ref": "#/components/schemas/MetricsUpdate"},
                           {"type": "array",
                            "items": {"$ref": "#/components/schemas/MetricsUpdate"}}]
    assert "seq" in spec["components"]["schemas"]["MetricsUpdate"]["properties"]


def test_the_event_stream_is_declared_as_text_event_stream(spec):
    ok = op(spec, "get", "/worlds/{world}/events")["responses"]["200"]["content"]
    assert list(ok) == ["text/event-stream"]
    item = ok["text/event-stream"]["itemSchema"]["properties"]
    assert item["event"]["enum"] == ["activation", "control", "evaluation", "keep-alive", "error"]
    refs = [x["$ref"].rsplit("/", 1)[-1] for x in item["data"]["contentSchema"]["anyOf"]]
    assert refs == ["ActivationEvent", "ControlEvent", "EvaluationEvent"]
    assert set(refs) <= set(spec["components"]["schemas"])


def test_a_body_that_cannot_be_decoded_is_a_documented_400(app, spec):
    """What schemathesis found: a JSON body that is not UTF-8 is FastAPI's 400."""
    assert "400" in op(spec, "post", "/worlds/{world}/allocations/apply")["responses"]
    with TestClient(app) as c:
        tok = create_token(app.state.service.store, "operator", "t")
        r = c.post("/worlds/w/allocations/apply", content=b" \xff",
                   headers={"Authorization": f"Bearer {tok}",
                            "Content-Type": "application/json"})
        assert r.status_code == 400 and isinstance(r.json()["detail"], str)


def test_the_schema_and_its_pages_are_public_and_the_api_is_not(app):
    with TestClient(app) as c:
        for page in ("/openapi.json", "/docs", "/redoc"):
            assert c.get(page).status_code == 200, page
        assert c.get("/worlds").status_code == 401


def test_a_route_added_by_another_router_gets_the_defaults_with_no_line_of_its_own(tmp_path):
    extra = APIRouter(prefix="/worlds/{world}/returns")

    @extra.get("")
    def returns(world: str, _: ViewerDep) -> dict:
        return {}

    @extra.post("/x", responses=error_responses(409))
    def post_x(world: str, who: Annotated[Actor, Depends(require("operator"))]) -> dict:
        return {}

    a = create_app(str(tmp_path / "w.db"))
    a.include_router(extra)
    document(a)  # what create_app does once its routers are in
    spec = a.openapi()
    assert set(spec["paths"]["/worlds/{world}/returns"]["get"]["responses"]) == {
        "200", "401", "403", "404", "422", "500", "503"}
    assert "409" in spec["paths"]["/worlds/{world}/returns/x"]["post"]["responses"]
    a.state.service.store.close()


def test_the_served_bodies_are_declared_and_keep_their_field_names(spec):
    """The routes declare their bodies (response_model=), which also passes every answer
    through them: a plan's changes still say "from" and "to"."""
    from fastapi import FastAPI

    from world_api.service.responses import Plan

    refs = {(m, p): o["responses"][next(iter(o["responses"]))]["content"]
            .get("application/json", {}).get("schema", {})
            for p, ops in spec["paths"].items() for m, o in ops.items()}
    assert refs[("get", "/worlds/{world}/activation")] == {
        "$ref": "#/components/schemas/ActivationTable"}
    assert refs[("post", "/worlds/{world}/allocations/plan")] == {
        "$ref": "#/components/schemas/Plan"}
    assert set(spec["components"]["schemas"]["WeightChange"]["properties"]) == {"from", "to"}
    body = {"world": "w", "plan_id": "p", "base_seq": 3, "current": {"a": 0.25},
            "proposed": {"a": 0.5}, "changes": {"a": {"from": 0.25, "to": 0.5}}}
    tiny = FastAPI()
    tiny.get("/plan", response_model=Plan)(lambda: body)
    assert TestClient(tiny).get("/plan").json() == body
