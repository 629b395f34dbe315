"""`RestApp`: the route table and the ASGI entry point of the v2 REST API.

A hand-rolled router over raw ASGI: one dict lookup on the path shape per request, no
middleware stack, so the per-request cost stays small next to the model's.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

from maas.errors import ErrorCode, MaasError, PayloadTooLarge
from maas.logs import request_id_var
from maas.serving.dataplane import DataPlane
from maas.serving.rest.deadline import DEADLINE_SCOPE_KEY, RequestDeadline
from maas.serving.rest.handlers import (
    HTTP_STATUS,
    PRINCIPAL_SCOPE_KEY,
    Handlers,
    HttpRequest,
    Reply,
    check_declared_length,
    error_reply,
)
from maas.serving.rest.mounts import match_mounted, mounted_routes
from maas.serving.rest.openapi import OPENAPI_PATH, openapi

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Handler = Callable[[HttpRequest], Awaitable[Reply]]

REQUEST_ID_HEADER = b"x-request-id"
MAX_REQUEST_ID_CHARS = 128  # longer client ids are replaced, so logs stay readable
# A front (the guard) that already parsed the headers and the path leaves them in the scope here.
HEADERS_SCOPE_KEY = "maas.headers"
ROUTE_SCOPE_KEY = "maas.route"


class RestApp:
    """The ASGI application of the v2 REST API over one data plane.

    Args:
        data_plane: what every route calls.
        max_request_bytes: bodies over this are refused with 413 (checked on the declared
            length and while reading).
    """

    def __init__(self, data_plane: DataPlane, *, max_request_bytes: int | None = None) -> None:
        self._max_bytes = max_request_bytes or data_plane.config.max_request_bytes
        self._dp = data_plane
        h = Handlers(data_plane)
        # (method, path shape) -> handler; "{m}" and "{v}" are the model and version segments.
        self._routes: dict[tuple[str, str], Handler] = {
            ("GET", "/v2/health/live"): h.live,
            ("GET", "/v2/health/ready"): h.ready,
            ("GET", "/v2"): h.server_metadata,
            ("GET", "/v2/models/stats"): h.model_stats,
            ("GET", "/v2/models/{m}"): h.model_metadata,
            ("GET", "/v2/models/{m}/ready"): h.model_ready,
            ("POST", "/v2/models/{m}/infer"): h.infer,
            ("GET", "/v2/models/{m}/config"): h.model_config,
            ("GET", "/v2/models/{m}/stats"): h.model_stats,
            ("GET", "/v2/models/{m}/versions/{v}"): h.model_metadata,
            ("GET", "/v2/models/{m}/versions/{v}/ready"): h.model_ready,
            ("POST", "/v2/models/{m}/versions/{v}/infer"): h.infer,
            ("GET", "/v2/models/{m}/versions/{v}/config"): h.model_config,
            ("GET", "/v2/models/{m}/versions/{v}/stats"): h.model_stats,
            ("GET", "/metrics"): h.metrics,
            ("GET", OPENAPI_PATH): openapi,
        }
        self._routes.update(mounted_routes(data_plane))  # management and compatible APIs
        self._paths = {path for _, path in self._routes}
        self.route_shape = RouteShapes(self._paths)
        self._id_prefix = os.urandom(4).hex()
        self._ids = itertools.count(1)

    @property
    def routes(self) -> frozenset[tuple[str, str]]:
        """Every (method, path shape) this app answers."""
        return frozenset(self._routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # lifespan and websockets are not used
        headers: dict[bytes, bytes] | None = scope.get(HEADERS_SCOPE_KEY)
        if headers is None:
            headers = dict(scope["headers"])
        request_id = self._request_id(headers)
        token = request_id_var.set(request_id)
        deadline: RequestDeadline | None = scope.get(DEADLINE_SCOPE_KEY)
        try:
            reply = await self._handle(scope, receive, headers, deadline)
        finally:
            request_id_var.reset(token)
        if deadline is not None:
            deadline.answering()
        out = [
            (b"content-type", reply.content_type),
            (b"content-length", str(len(reply.body)).encode()),
            (REQUEST_ID_HEADER, request_id.encode()),
            *reply.headers,
        ]
        await send({"type": "http.response.start", "status": reply.status, "headers": out})
        await send({"type": "http.response.body", "body": reply.body})

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        headers: dict[bytes, bytes],
        deadline: RequestDeadline | None,
    ) -> Reply:
        method = scope["method"]
        route = scope.get(ROUTE_SCOPE_KEY)
        shape, model, version = route if route is not None else self.route_shape(scope["path"])
        handler = self._routes.get((method, shape))
        if handler is None:
            if shape in self._paths:
                return error_reply(405, f"method {method} is not allowed on {scope['path']}")
            return error_reply(404, f"no route for {scope['path']}")
        try:
            has_body = method in ("POST", "PUT")
            body = await self._read_body(receive, headers) if has_body else b""
            if deadline is not None:
                deadline.body_read()
        except MaasError as err:
            if model is not None:
                self._dp.count_rejected(model, version, "rest", err.code)
            return error_reply(HTTP_STATUS[err.code], str(err))
        try:
            principal = scope.get(PRINCIPAL_SCOPE_KEY)
            return await handler(HttpRequest(model, version, headers, body, principal))
        except MaasError as err:
            if err.code is not ErrorCode.INTERNAL:
                return error_reply(HTTP_STATUS[err.code], str(err))
            log.error("request.failed", exc_info=err, extra={"path": scope["path"]})
        except Exception as err:  # a transport handler is a boundary: never crash the server
            log.error("request.failed", exc_info=err, extra={"path": scope["path"]})
        return error_reply(500, f"internal error; request id {request_id_var.get()}")

    async def _read_body(self, receive: Receive, headers: dict[bytes, bytes]) -> bytes:
        limit = self._max_bytes
        check_declared_length(headers, limit)
        message = await receive()
        body: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if len(body) > limit:
                raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
            return body
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    def _request_id(self, headers: dict[bytes, bytes]) -> str:
        given = headers.get(REQUEST_ID_HEADER)
        if given and len(given) <= MAX_REQUEST_ID_CHARS:
            text = given.decode("latin-1")
            if text.isprintable() and text.isascii():
                return text
        return f"{self._id_prefix}-{next(self._ids)}"


Shape = tuple[str, str | None, str | None]  # path shape, model, version
ROUTE_CACHE_SIZE = 4096  # distinct paths remembered; clients repeat a handful
# The longest real path (two names of at most 128 characters and the fixed parts) fits; longer
# ones are worked out each time, so the cache holds at most about 4 MiB whatever clients send.
MAX_CACHED_PATH_CHARS = 320


class RouteShapes:
    """Path -> (shape, model, version) of one app, remembered for the paths of its routes.

    Every request asks (the guard before authentication), so only what a client cannot grow is
    kept: ASCII paths of at most `MAX_CACHED_PATH_CHARS` characters whose shape is a route of the
    app, at most `ROUTE_CACHE_SIZE` of them (a scan of many distinct paths starts over).

    Args:
        shapes: the path shapes the app answers.
    """

    def __init__(self, shapes: Collection[str]) -> None:
        self._shapes = frozenset(shapes)
        self._cache: dict[str, Shape] = {}

    def __call__(self, path: str) -> Shape:
        found = self._cache.get(path)
        if found is not None:
            return found
        found = route_shape(path)
        if len(path) <= MAX_CACHED_PATH_CHARS and path.isascii() and found[0] in self._shapes:
            if len(self._cache) >= ROUTE_CACHE_SIZE:
                self._cache.clear()
            self._cache[path] = found
        return found


def route_shape(path: str) -> Shape:
    """`/v2/models/digits/versions/3/infer` -> (`/v2/models/{m}/versions/{v}/infer`, digits, 3)."""
    mounted = match_mounted(path)
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
