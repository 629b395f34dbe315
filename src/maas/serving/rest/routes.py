"""The REST route table: every route declared once, with its method, path shape, handler,
endpoint kind and metrics protocol.

Routing, access control (the kind decides the scope a caller needs, `security.acl`) and the
OpenAPI document are all read from `RouteTable`. A path matches a shape with `{m}` and `{v}`
standing for the model and version segments.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from maas.serving.dataplane import DataPlane
from maas.serving.rest.compat_sagemaker import SageMakerHandlers
from maas.serving.rest.compat_tfserving import TfServingHandlers, match_tfserving
from maas.serving.rest.compat_torchserve import TorchServeHandlers, match_torchserve
from maas.serving.rest.explain import ExplainHandlers
from maas.serving.rest.generate import GenerateHandlers
from maas.serving.rest.handlers import Handlers, HttpRequest, Reply
from maas.serving.rest.management import ManagementHandlers, match_management
from maas.serving.rest.openai import OpenAiHandlers
from maas.serving.rest.openapi import OPENAPI_PATH, OpenApi, openapi_document

Handler = Callable[[HttpRequest], Awaitable[Reply]]
Shape = tuple[str, str | None, str | None]  # (path shape, model, version)

UNKNOWN_ROUTE_KIND = "server_metadata"  # a path no route answers: any valid credentials, then 404
WRONG_METHOD_KIND = "management"  # a known path with another method: admin, then 405
MAX_CACHED_PATH_CHARS = 320  # fits two 128-character names and the fixed parts; longer: not kept
MAX_CACHED_PATHS = 1024  # distinct paths remembered; clients repeat a handful


@dataclass(frozen=True, slots=True)
class Route:
    """One REST route.

    Attributes:
        method: the HTTP method.
        shape: the path with `{m}` (model) and `{v}` (version) placeholders.
        kind: the endpoint kind, a key of `security.acl.ENDPOINT_ACTIONS`.
        handler: `group.method` of the handler objects `bind_routes` is given (`v2.infer`).
        protocol: the metrics label of its requests (`rest`, or the compatible API's name).
    """

    method: str
    shape: str
    kind: str
    handler: str
    protocol: str = "rest"

    @property
    def has_body(self) -> bool:
        """Whether the request carries a body to read."""
        return self.method in ("POST", "PUT")


@dataclass(frozen=True, slots=True)
class BoundRoute:
    """A route with its handler bound to a data plane."""

    route: Route
    handler: Handler


_M, _MV = "/v2/models/{m}", "/v2/models/{m}/versions/{v}"
_TF, _SM, _TS, _OA = "tfserving", "sagemaker", "torchserve", "openai"

# Every route of the REST API: the one place a route is declared.
ROUTES: tuple[Route, ...] = (
    Route("GET", "/v2/health/live", "health_live", "v2.live"),
    Route("GET", "/v2/health/ready", "health_ready", "v2.ready"),
    Route("GET", "/v2", "server_metadata", "v2.server_metadata"),
    Route("GET", "/v2/models/stats", "model_statistics", "v2.model_stats"),
    Route("GET", OPENAPI_PATH, "openapi", "openapi.answer"),
    Route("GET", "/metrics", "metrics", "v2.metrics"),
    *(
        route
        for base in (_M, _MV)
        for route in (
            Route("GET", base, "model_metadata", "v2.model_metadata"),
            Route("GET", f"{base}/ready", "model_ready", "v2.model_ready"),
            Route("POST", f"{base}/infer", "infer", "v2.infer"),
            Route("GET", f"{base}/config", "model_config", "v2.model_config"),
            Route("GET", f"{base}/stats", "model_statistics", "v2.model_stats"),
            Route("POST", f"{base}/explain", "explain", "explain.explain"),
            Route("POST", f"{base}/generate", "infer", "generate.generate"),
            Route("POST", f"{base}/generate_stream", "infer", "generate.generate_stream"),
        )
    ),
    Route("POST", "/v2/repository/index", "repository_index", "manage.index"),
    Route("POST", "/v2/repository/models/{m}/load", "repository_load", "manage.load"),
    Route("POST", "/v2/repository/models/{m}/unload", "repository_unload", "manage.unload"),
    Route("PUT", f"{_M}/aliases/{{v}}", "management", "manage.set_alias"),
    Route("GET", f"{_M}/route", "management", "manage.get_route"),
    Route("PUT", f"{_M}/route", "management", "manage.set_route"),
    Route("DELETE", f"{_M}/route", "management", "manage.clear_route"),
    Route("POST", f"{_M}/rollback", "management", "manage.rollback"),
    Route("GET", "/v1/models/{m}", "model_metadata", "tf.status", _TF),
    Route("GET", "/v1/models/{m}/versions/{v}", "model_metadata", "tf.status", _TF),
    Route("GET", "/v1/models/{m}/metadata", "model_metadata", "tf.metadata", _TF),
    Route("GET", "/v1/models/{m}/versions/{v}/metadata", "model_metadata", "tf.metadata", _TF),
    Route("POST", "/v1/models/{m}:predict", "tfserving_predict", "tf.predict", _TF),
    Route("POST", "/v1/models/{m}/versions/{v}:predict", "tfserving_predict", "tf.predict", _TF),
    Route("GET", "/ping", "sagemaker_ping", "sm.ping", _SM),
    Route("POST", "/invocations", "sagemaker_invocations", "sm.invocations", _SM),
    Route("POST", "/predictions/{m}", "torchserve_predictions", "ts.predictions", _TS),
    Route("POST", "/predictions/{m}/{v}", "torchserve_predictions", "ts.predictions", _TS),
    Route("POST", "/v1/completions", "openai_generate", "openai.completions", _OA),
    Route("POST", "/v1/chat/completions", "openai_generate", "openai.chat_completions", _OA),
    Route("GET", "/v1/models", "repository_index", "openai.models", _OA),
)


def bind_routes(data_plane: DataPlane, routes: tuple[Route, ...] = ROUTES) -> RouteTable:
    """The route table of the REST API over `data_plane`.

    Raises:
        ValueError: a route names a handler that does not exist, or is declared twice.
    """
    groups: dict[str, object] = {
        "v2": Handlers(data_plane),
        "manage": ManagementHandlers(data_plane),
        "tf": TfServingHandlers(data_plane),
        "sm": SageMakerHandlers(data_plane),
        "ts": TorchServeHandlers(data_plane),
        "explain": ExplainHandlers(data_plane),
        "generate": GenerateHandlers(data_plane),
        "openai": OpenAiHandlers(data_plane),
        "openapi": OpenApi(openapi_document(routes)),
    }
    bound = []
    for route in routes:
        group, _, name = route.handler.partition(".")
        handler = getattr(groups.get(group), name, None)
        if not callable(handler):
            raise ValueError(f"route {route.method} {route.shape}: no handler {route.handler}")
        bound.append(BoundRoute(route, handler))
    return RouteTable(tuple(bound))


class RouteTable:
    """Finds the route of a request: its path's shape, then (method, shape).

    Args:
        routes: the bound routes; a (method, shape) pair may appear once.
    """

    def __init__(self, routes: tuple[BoundRoute, ...]) -> None:
        self._routes = {(b.route.method, b.route.shape): b for b in routes}
        if len(self._routes) != len(routes):
            raise ValueError("a (method, path shape) pair is declared twice")
        self._shapes = {b.route.shape for b in routes}
        # Only short ASCII paths of real routes, at most MAX_CACHED_PATHS of them: nothing a client
        # sends (before authentication) grows it past about 1 MiB.
        self._cache: dict[str, Shape] = {}

    def __iter__(self) -> Iterator[Route]:
        return (bound.route for bound in self._routes.values())

    def __len__(self) -> int:
        return len(self._routes)

    def find(self, method: str, shape: str) -> BoundRoute | None:
        """The route of (method, shape), None when there is none."""
        return self._routes.get((method, shape))

    def kind_of(self, method: str, shape: str) -> str:
        """The endpoint kind a request needs: its route's; admin for a known path with another
        method (answered 405); credentials only for a path nothing answers (answered 404)."""
        bound = self._routes.get((method, shape))
        if bound is not None:
            return bound.route.kind
        return WRONG_METHOD_KIND if shape in self._shapes else UNKNOWN_ROUTE_KIND

    def knows_shape(self, shape: str) -> bool:
        """Whether some route has this path shape."""
        return shape in self._shapes

    def match(self, path: str) -> Shape:
        """The shape, model and version of `path`, remembered for short paths.

        `/v2/models/digits/versions/3/infer` -> (`/v2/models/{m}/versions/{v}/infer`, digits, 3).
        """
        found = self._cache.get(path)
        if found is not None:
            return found
        found = path_shape(path)
        if len(path) <= MAX_CACHED_PATH_CHARS and path.isascii() and found[0] in self._shapes:
            if len(self._cache) >= MAX_CACHED_PATHS:
                self._cache.clear()  # many distinct paths (a scan): start over, stay bounded
            self._cache[path] = found
        return found


def path_shape(path: str) -> Shape:
    """The shape, model and version of a request path (the path itself when it has none)."""
    for matcher in (match_management, match_tfserving, match_torchserve):
        mounted = matcher(path)
        if mounted is not None:
            return mounted
    if not path.startswith("/v2/models/"):
        return path.rstrip("/") or "/", None, None
    parts = path[len("/v2/models/") :].split("/")
    if len(parts) == 1 and parts[0] == "stats":
        return "/v2/models/stats", None, None
    model = parts[0]
    if len(parts) >= 3 and parts[1] == "versions":
        tail = "/".join(parts[3:])
        shape = "/v2/models/{m}/versions/{v}" + (f"/{tail}" if tail else "")
        return shape, model, parts[2]
    tail = "/".join(parts[1:])
    return "/v2/models/{m}" + (f"/{tail}" if tail else ""), model, None
