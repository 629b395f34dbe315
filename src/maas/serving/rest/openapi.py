"""The OpenAPI 3 description of the v2 REST routes, shipped in the package and served at
`/v2/openapi.json` (open, like gRPC reflection: it describes the API and holds no data)."""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any

from maas.serving.rest.handlers import HttpRequest, Reply

OPENAPI_PATH = "/v2/openapi.json"


@functools.cache
def openapi_bytes() -> bytes:
    """The document's bytes, read from the package once."""
    return resources.files("maas.serving.rest").joinpath("openapi.json").read_bytes()


def openapi_document() -> dict[str, Any]:
    """The document as a dict (a fresh copy each call)."""
    doc: dict[str, Any] = json.loads(openapi_bytes())
    return doc


async def openapi(request: HttpRequest) -> Reply:
    """`GET /v2/openapi.json`."""
    return Reply(200, openapi_bytes())
