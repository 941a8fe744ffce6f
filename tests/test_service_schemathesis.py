"""Schemathesis against the service's own OpenAPI document: no generated request gets a 500,
and every answer matches the document (status codes, content types, bodies)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import negative_data_rejection, positive_data_acceptance

from carbonlake.service import create_app
from carbonlake.settings import load_settings

from .conftest import HEADER, activity_row

KEY = "fuzz-key"
SEMANTIC_WRITES = ("/uploads", "/events/s3")
"""Writes whose schema-valid input may still be refused with 400 for what no schema says: an
object key with '..' or control characters, an event for a bucket other than landing. Every
other check (no 5xx, status codes, content types, bodies, refusing invalid input, auth) runs on
them too."""
SEMANTIC_READS = ("/report",)
"""Reads whose schema-valid input may be refused with 400: a report whose `from` month is
after its `to` month."""

# The schema is loaded when the module is collected (schemathesis' lazy fixture loader does
# not work with pytest 9), so the app's workspace is made here and removed after the tests.
WORKSPACE = Path(tempfile.mkdtemp(prefix="carbonlake-fuzz-"))
atexit.register(shutil.rmtree, WORKSPACE, True)  # also when the tests here are deselected
# schemathesis' ASGI client sends "Host: testserver"; the service answers only for allowed hosts.
ENVIRON = {"CARBONLAKE_SERVER__API_KEYS": KEY, "CARBONLAKE_SERVER__ALLOWED_HOSTS": "testserver"}
APP = create_app(load_settings(WORKSPACE / "ws", environ=ENVIRON))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def calculated_records() -> Iterator[None]:
    """A few calculated records, so that queries find something; the workspace goes after."""
    with TestClient(APP) as client:
        rows = "\n".join([HEADER, *(activity_row(f"fuzz-{i}") for i in range(5))])
        accepted = client.post(
            "/uploads",
            files={"file": ("fuzz.csv", rows.encode(), "text/csv")},
            headers={"X-API-Key": KEY},
        )
        assert accepted.status_code == 202
        yield
    shutil.rmtree(WORKSPACE, ignore_errors=True)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_request_breaks_the_service(case: Case) -> None:
    excluded = []
    if case.operation.method.upper() == "POST" and case.operation.path in SEMANTIC_WRITES:
        excluded.append(positive_data_acceptance)
    if case.operation.method.upper() == "GET" and case.operation.path in SEMANTIC_READS:
        excluded.append(positive_data_acceptance)
    if case.operation.method.upper() == "POST" and case.operation.path == "/uploads":
        # Multipart form fields are text on the wire: a "key" of -2967652 generated as an
        # integer arrives as the string "-2967652", a valid key. Type-violating multipart
        # data cannot exist, so its rejection cannot be checked.
        excluded.append(negative_data_rejection)
    case.call_and_validate(headers={"X-API-Key": KEY}, excluded_checks=excluded)


def test_the_schema_covers_every_route() -> None:
    document = schema.raw_schema
    assert document["info"]["title"] == "carbonlake"
    operations = {(path, method) for path, item in document["paths"].items() for method in item}
    assert {
        ("/uploads", "post"),
        ("/events/s3", "post"),
        ("/executions", "get"),
        ("/executions/{execution_id}", "get"),
        ("/executions/{execution_id}/history", "get"),
        ("/emissions", "get"),
        ("/emissions/summary", "get"),
        ("/emissions/records/{activity_event_id}", "get"),
        ("/emissions/records/{activity_event_id}", "delete"),
        ("/lineage/{root_id}", "get"),
        ("/lineage/trace/{node_id}", "get"),
        ("/lineage/verify", "post"),
        ("/quality/{root_id}", "get"),
        ("/factors", "get"),
        ("/report", "get"),
    } <= operations
