"""The OpenAPI 3 description of the REST routes, served at `/v2/openapi.json` (open, like gRPC
reflection: it describes the API and holds no data).

The paths come from the route table: each route is described by its operation in the packaged
`openapi.json` when it has one (the v2 routes, with full request and response schemas), and by a
short generated operation otherwise (management and compatible APIs, tagged so). A route that is
not in the table is not in the document.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable
from importlib import resources
from typing import Any, Protocol

import orjson

from maas.security.acl import ENDPOINT_ACTIONS, Action
from maas.serving.rest.handlers import HttpRequest, Reply

OPENAPI_PATH = "/v2/openapi.json"
DOCUMENTED_TAG = "v2"  # operations with full schemas (what the fuzz tests exercise)
_PLACEHOLDERS = {"{m}": "{model_name}", "{v}": "{model_version}"}


class RouteLike(Protocol):
    """What the document needs of a route."""

    @property
    def method(self) -> str: ...
    @property
    def shape(self) -> str: ...
    @property
    def kind(self) -> str: ...


@functools.cache
def _packaged() -> bytes:
    return resources.files("maas.serving.rest").joinpath("openapi.json").read_bytes()


def openapi_path(shape: str) -> str:
    """A route shape in OpenAPI's form: `/v2/models/{m}` -> `/v2/models/{model_name}`."""
    for placeholder, name in _PLACEHOLDERS.items():
        shape = shape.replace(placeholder, name)
    return shape


def openapi_document(routes: Iterable[RouteLike]) -> dict[str, Any]:
    """The OpenAPI document of `routes` (a fresh dict each call)."""
    doc: dict[str, Any] = json.loads(_packaged())
    described: dict[str, Any] = doc["paths"]
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        path = openapi_path(route.shape)
        method = route.method.lower()
        operation = described.get(path, {}).get(method)
        if operation is None:
            operation = _generated(route, path)
        else:
            operation.setdefault("tags", [DOCUMENTED_TAG])
        paths.setdefault(path, {})[method] = operation
    doc["paths"] = paths
    return doc


def _generated(route: RouteLike, path: str) -> dict[str, Any]:
    action = ENDPOINT_ACTIONS[route.kind]
    parameters = [
        {"name": name.strip("{}"), "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PLACEHOLDERS.values()
        if name in path
    ]
    operation: dict[str, Any] = {
        "summary": f"{route.kind.replace('_', ' ')} ({action.value})",
        "tags": [route.kind],
        "responses": {"default": {"description": 'JSON; errors as {"error": message}'}},
    }
    if parameters:
        operation["parameters"] = parameters
    if action is Action.OPEN:
        operation["security"] = []
    return operation


class OpenApi:
    """Answers `GET /v2/openapi.json` with one document, encoded once."""

    def __init__(self, document: dict[str, Any]) -> None:
        self._body = orjson.dumps(document)

    async def answer(self, request: HttpRequest) -> Reply:
        """`GET /v2/openapi.json`."""
        return Reply(200, self._body)
