"""Every endpoint names its kind, so every one is checked with the scope it needs."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from maas.protocol.proto import grpc_service_pb2 as pb
from maas.registry.store import Registry
from maas.security.acl import ENDPOINT_ACTIONS, GRPC_METHOD_KINDS, Action
from maas.serving.rest.app import RestApp
from maas.serving.rest.auth import ALL_KINDS, UNCLASSIFIED_KIND, UNKNOWN_ROUTE_KIND, endpoint_kind
from maas.serving.server import build_data_plane


def test_every_rest_route_has_a_kind(secure_registry: Registry) -> None:
    data_plane = build_data_plane(secure_registry, None, None, CollectorRegistry())
    try:
        routes = RestApp(data_plane).routes
    finally:
        data_plane.close()
    unclassified = sorted(route for route in routes if route not in ALL_KINDS)
    assert unclassified == []
    assert set(ALL_KINDS.values()) <= set(ENDPOINT_ACTIONS)


def test_unclassified_routes_need_admin_and_unknown_paths_a_key() -> None:
    routes = {("POST", "/v2/something/new")}
    assert endpoint_kind("POST", "/v2/something/new", routes) == UNCLASSIFIED_KIND
    assert ENDPOINT_ACTIONS[UNCLASSIFIED_KIND] is Action.ADMIN
    assert endpoint_kind("GET", "/nowhere", routes) == UNKNOWN_ROUTE_KIND
    assert ENDPOINT_ACTIONS[UNKNOWN_ROUTE_KIND] is Action.AUTHENTICATED
    assert endpoint_kind("POST", "/v2/models/{m}/infer", routes) == "infer"


def test_every_grpc_method_has_a_kind() -> None:
    service = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"]
    methods = sorted(method.name for method in service.methods)
    assert sorted(m for m in methods if m not in GRPC_METHOD_KINDS) == []
    health = [m for m in methods if ENDPOINT_ACTIONS[GRPC_METHOD_KINDS[m]] is Action.OPEN]
    assert health == ["ServerLive", "ServerReady"]
