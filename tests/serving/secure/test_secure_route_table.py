"""Every endpoint names its kind, so every one is checked with the scope it needs; the OpenAPI
document is read from the same route table."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from maas.protocol.proto import grpc_service_pb2 as pb
from maas.registry.store import Registry
from maas.security.acl import ENDPOINT_ACTIONS, GRPC_METHOD_KINDS, Action
from maas.serving.rest.openapi import openapi_document, openapi_path
from maas.serving.rest.routes import (
    ROUTES,
    UNKNOWN_ROUTE_KIND,
    WRONG_METHOD_KIND,
    bind_routes,
)
from maas.serving.server import build_data_plane


def test_every_rest_route_has_a_kind_and_a_handler(secure_registry: Registry) -> None:
    data_plane = build_data_plane(secure_registry, None, None, CollectorRegistry())
    try:
        table = bind_routes(data_plane)
    finally:
        data_plane.close()
    assert sorted((r.method, r.shape) for r in table) == sorted((r.method, r.shape) for r in ROUTES)
    assert sorted(r.kind for r in ROUTES if r.kind not in ENDPOINT_ACTIONS) == []


def test_wrong_methods_need_admin_and_unknown_paths_a_key(secure_registry: Registry) -> None:
    data_plane = build_data_plane(secure_registry, None, None, CollectorRegistry())
    try:
        table = bind_routes(data_plane)
    finally:
        data_plane.close()
    assert table.kind_of("DELETE", "/v2/models/{m}/infer") == WRONG_METHOD_KIND
    assert ENDPOINT_ACTIONS[WRONG_METHOD_KIND] is Action.ADMIN
    assert table.kind_of("GET", "/nowhere") == UNKNOWN_ROUTE_KIND
    assert ENDPOINT_ACTIONS[UNKNOWN_ROUTE_KIND] is Action.AUTHENTICATED
    assert table.kind_of("POST", "/v2/models/{m}/infer") == "infer"


def test_the_openapi_document_lists_exactly_the_routes() -> None:
    paths = openapi_document(ROUTES)["paths"]
    documented = {(method.upper(), path) for path, ops in paths.items() for method in ops}
    assert documented == {(r.method, openapi_path(r.shape)) for r in ROUTES}
    health = paths["/v2/health/live"]["get"]
    assert health["tags"] == ["v2"]  # the packaged operation, with its schemas
    load = paths["/v2/repository/models/{model_name}/load"]["post"]
    assert load["tags"] == ["repository_load"]  # a generated one
    assert load["parameters"][0]["name"] == "model_name"


def test_every_grpc_method_has_a_kind() -> None:
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    methods = sorted(method.name for method in service.methods)
    assert sorted(m for m in methods if m not in GRPC_METHOD_KINDS) == []
    health = [m for m in methods if ENDPOINT_ACTIONS[GRPC_METHOD_KINDS[m]] is Action.OPEN]
    assert health == ["ServerLive", "ServerReady"]
