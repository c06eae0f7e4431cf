"""Schemathesis over the whole OpenAPI schema of the service, in process (ASGI), with an
operator token: whatever it generates, the answer is no 5xx, its status is one the schema
declares for that operation, its content type is the declared one, and its body matches the
declared schema. A bounded number of examples per operation keeps it to seconds.

An event stream is asked with ``once=true`` (an operation that takes ``once`` then ends when
caught up; without it, it streams until the client leaves)."""

from __future__ import annotations

import os

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from world_api.service.app import create_app
from world_api.service.auth import create_token
from world_api.service.store import WorldInfo, open_store

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance]
EXAMPLES = int(os.environ.get("QMTL_SCHEMATHESIS_EXAMPLES", "12"))
"""Examples per operation: 12 keeps the test to seconds; set more for a deeper search."""
TOKEN: dict[str, str] = {}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory):
    """The app on a SQLite store with world ``w1`` and an operator token, as schemathesis
    sees it: its own ``/openapi.json``."""
    store = open_store(str(tmp_path_factory.mktemp("st") / "world.db"))
    TOKEN["operator"] = create_token(store, "operator", "schemathesis")
    store.create_world(WorldInfo(id="w1", name="demo"))
    yield schemathesis.openapi.from_asgi("/openapi.json", create_app(store))
    store.close()


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck), derandomize=True)
def test_the_service_answers_what_its_schema_says(case):
    if "once" in {p.name for p in case.operation.query}:  # an event stream: end when caught up
        case.query = {**(case.query or {}), "once": "true"}
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN['operator']}"},
                           checks=CHECKS)
