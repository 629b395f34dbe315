"""Fuzz the v2 REST API from its own OpenAPI document (schemathesis): valid and invalid requests
against a live server; none may get a 5xx, and the server stays up.

`MAAS_FUZZ_EXAMPLES` sets the examples per operation (`make fuzz` runs many more).
"""

from __future__ import annotations

import os

import httpx
import pytest
import schemathesis
from hardening_helpers import LiveServer
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode

from maas.serving.rest.openapi import DOCUMENTED_TAG, openapi_document
from maas.serving.rest.routes import ROUTES

LONG_RUN = os.environ.get("MAAS_FUZZ_EXAMPLES")
EXAMPLES = int(LONG_RUN or "10")

# The v2 operations, with full schemas; management routes would change the served state.
schema = schemathesis.openapi.from_dict(openapi_document(ROUTES)).include(tag=DOCUMENTED_TAG)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], max_examples=EXAMPLES
)


def test_the_server_serves_its_openapi_document(live_server: LiveServer) -> None:
    reply = httpx.get(f"{live_server.url}/v2/openapi.json", timeout=10)  # open, like health
    assert reply.status_code == 200
    assert reply.json() == openapi_document(ROUTES)
    assert "/v2/models/{model_name}/infer" in reply.json()["paths"]


@pytest.mark.slow
@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=LONG_RUN is None,  # the bounded run repeats itself; a long run explores
    database=None,
)
def test_no_request_gets_a_5xx(case: schemathesis.Case, live_server: LiveServer) -> None:
    if "model_name" in case.path_parameters and case.method.upper() == "POST":
        case.path_parameters["model_name"] = "digits"  # reach the decoders, not the 404
    response = case.call(base_url=live_server.url, headers=live_server.auth, timeout=15)
    assert response.status_code < 500, (case.method, case.formatted_path, response.text[:500])
