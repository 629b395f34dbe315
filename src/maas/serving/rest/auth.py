"""`GuardedApp`: authentication, access control, rate and size limits and the request timeout,
in front of the REST app.

Every route names its endpoint kind (`ROUTE_KINDS` here for the v2 routes, `MOUNTED_KINDS` for
management and compatible APIs); the kind decides the scope a caller needs (`security.acl`).
A route of the app that names no kind needs `admin`, so a new route is closed until it is
classified. Paths that match no route only need valid credentials (then answer 404).

Credentials come from `Authorization: Bearer <key|jwt>`. Refusals answer 401 (with
`WWW-Authenticate: Bearer`), 403, or 429 (with `Retry-After`, whole seconds, rounded up).
The caller is put in the ASGI scope under `PRINCIPAL_SCOPE_KEY` for the handlers (audit).
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

import orjson

from maas.errors import DeadlineExceeded, ErrorCode, MaasError, PayloadTooLarge, ResourceExhausted
from maas.security.acl import Principal
from maas.security.guard import Guard
from maas.security.ratelimit import RateLimit
from maas.serving.dataplane import DataPlane
from maas.serving.protection import Protection
from maas.serving.rest.app import HEADERS_SCOPE_KEY, ROUTE_SCOPE_KEY, RestApp, Shape, route_shape
from maas.serving.rest.compat_sagemaker import TARGET_MODEL_HEADER
from maas.serving.rest.deadline import DEADLINE_SCOPE_KEY, RequestDeadline
from maas.serving.rest.handlers import HTTP_STATUS, PRINCIPAL_SCOPE_KEY, check_declared_length
from maas.serving.rest.mounts import MOUNTED_KINDS
from maas.serving.rest.openapi import OPENAPI_PATH

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Asgi = Callable[[Scope, Receive, Send], Awaitable[None]]
ServedModels = Callable[[], Collection[str]]

UNKNOWN_ROUTE_KIND = "server_metadata"  # any valid credentials, then the app's 404
UNCLASSIFIED_KIND = "management"  # a route nobody classified needs admin
REQUEST_TIMEOUT_STATUS = 408  # the client did not send its body in time: its mistake, not ours

# (method, path shape) -> endpoint kind of the v2 REST routes.
ROUTE_KINDS: dict[tuple[str, str], str] = {
    ("GET", "/v2/health/live"): "health_live",
    ("GET", "/v2/health/ready"): "health_ready",
    ("GET", "/v2"): "server_metadata",
    ("GET", "/v2/models/stats"): "model_statistics",
    ("GET", "/v2/models/{m}"): "model_metadata",
    ("GET", "/v2/models/{m}/ready"): "model_ready",
    ("POST", "/v2/models/{m}/infer"): "infer",
    ("GET", "/v2/models/{m}/config"): "model_config",
    ("GET", "/v2/models/{m}/stats"): "model_statistics",
    ("GET", "/v2/models/{m}/versions/{v}"): "model_metadata",
    ("GET", "/v2/models/{m}/versions/{v}/ready"): "model_ready",
    ("POST", "/v2/models/{m}/versions/{v}/infer"): "infer",
    ("GET", "/v2/models/{m}/versions/{v}/config"): "model_config",
    ("GET", "/v2/models/{m}/versions/{v}/stats"): "model_statistics",
    ("GET", "/metrics"): "metrics",
    ("GET", OPENAPI_PATH): "openapi",
}
ALL_KINDS: dict[tuple[str, str], str] = {**ROUTE_KINDS, **MOUNTED_KINDS}


def endpoint_kind(method: str, shape: str, routes: Collection[tuple[str, str]]) -> str:
    """The endpoint kind of a request: its route's, `management` for an unclassified route of
    the app, or `server_metadata` (credentials only) for a path the app does not answer."""
    kind = ALL_KINDS.get((method, shape))
    if kind is not None:
        return kind
    return UNCLASSIFIED_KIND if (method, shape) in routes else UNKNOWN_ROUTE_KIND


def retry_after_header(err: ResourceExhausted) -> bytes:
    """`Retry-After` in whole seconds, at least 1 (HTTP has no fractions)."""
    seconds = err.retry_after_s if err.retry_after_s is not None else 1.0
    return str(max(1, math.ceil(seconds))).encode()


class GuardedApp:
    """The REST app behind the guard, per-model body limits and the request timeout.

    Args:
        app: the REST app (answers everything that gets through).
        protection: the guard and the per-model limits.
        routes: the app's (method, path shape) pairs, so unclassified routes stay closed.
        served_models: the names being served (SageMaker's `/invocations` names no model: with
            one model served, it is that one).
        timeout_s: a request that is not answered within this (body read included) gets 504.
        shape_of: path -> (shape, model, version); the app's own bounded cache of it, if any.
    """

    def __init__(
        self,
        app: Asgi,
        protection: Protection,
        routes: Collection[tuple[str, str]],
        served_models: ServedModels,
        timeout_s: float,
        *,
        shape_of: Callable[[str], Shape] = route_shape,
    ) -> None:
        self._app = app
        self._shape_of = shape_of
        self._protection = protection
        self._routes = frozenset(routes)
        self._served_models = served_models
        self._timeout_s = timeout_s
        # `RestApp` reports reading the body and answering itself; others get wrapped.
        self._tracks_deadline = isinstance(app, RestApp)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        method = scope["method"]
        route = self._shape_of(scope["path"])
        # The app reads these back instead of computing them again.
        scope[HEADERS_SCOPE_KEY] = headers
        scope[ROUTE_SCOPE_KEY] = route
        shape, model, _ = route
        kind = endpoint_kind(method, shape, self._routes)
        if kind == "sagemaker_invocations":
            model = self._sagemaker_model(headers)
        limits = self._protection.limits_for(model)
        if self._protection.guard is not None or limits.max_request_bytes is not None:
            try:
                principal = await self._check(headers, kind, model, limits.rate_limit)
                if limits.max_request_bytes is not None:
                    check_declared_length(headers, limits.max_request_bytes)
            except MaasError as err:
                await _refuse(send, err)
                return
            if principal is not None:
                scope[PRINCIPAL_SCOPE_KEY] = principal
            if limits.max_request_bytes is not None:
                receive = _capped(receive, limits.max_request_bytes)
        await self._answer_in_time(scope, receive, send)

    async def _check(
        self,
        headers: dict[bytes, bytes],
        kind: str,
        model: str | None,
        model_limit: RateLimit | None,
    ) -> Principal | None:
        guard: Guard | None = self._protection.guard
        if guard is None:
            return None
        raw = headers.get(b"authorization")
        credentials = raw.decode("latin-1") if raw is not None else None
        if guard.is_blocking:  # a shared limiter talks to Redis: keep it off the event loop
            return await asyncio.to_thread(guard.check, credentials, kind, model, model_limit)
        return guard.check(credentials, kind, model, model_limit)

    def _sagemaker_model(self, headers: dict[bytes, bytes]) -> str | None:
        given = headers.get(TARGET_MODEL_HEADER)
        if given is not None:
            text = given.decode("latin-1").strip().rsplit("/", 1)[-1]
            for suffix in (".tar.gz", ".tgz", ".tar"):
                text = text.removesuffix(suffix)
            return text.partition("@")[0] or None
        served = list(self._served_models())
        return served[0] if len(served) == 1 else None

    async def _answer_in_time(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app; if it has not started answering within the timeout, answer 408 when the
        client had not finished sending its body (its mistake), else 504."""
        task = asyncio.current_task()
        if task is None:  # ASGI servers call apps inside a task
            raise RuntimeError("the REST app must run inside an asyncio task")
        deadline = RequestDeadline(task, scope["method"] not in ("POST", "PUT", "PATCH"))
        deadline.start(self._timeout_s)
        if self._tracks_deadline:
            scope[DEADLINE_SCOPE_KEY] = deadline
        else:
            receive, send = deadline.tracked(receive, send)
        try:
            await self._app(scope, receive, send)
        except asyncio.CancelledError:
            if not deadline.is_expired or task.uncancel() > deadline.cancelling:
                raise  # not ours: the server or the client cancelled the request
            if deadline.is_started:
                raise TimeoutError from None
            await self._time_out(scope, send, deadline)
        except TimeoutError:
            if deadline.is_started:
                raise
            await self._time_out(scope, send, deadline)
        finally:
            deadline.stop()

    async def _time_out(self, scope: Scope, send: Send, deadline: RequestDeadline) -> None:
        log.info("request.timeout", extra={"path": scope["path"], "body_done": deadline.body_done})
        if not deadline.body_done:
            await _send_error(
                send,
                REQUEST_TIMEOUT_STATUS,
                f"the request body did not arrive within {self._timeout_s:g} s",
                [],
            )
            return
        await _refuse(
            send,
            DeadlineExceeded(f"the request was not answered within {self._timeout_s:g} s"),
        )


def _capped(receive: Receive, limit: int) -> Receive:
    """`receive` that refuses a body growing over `limit` bytes (chunked bodies included)."""
    size = 0

    async def capped() -> Message:
        nonlocal size
        message = await receive()
        size += len(message.get("body", b""))
        if size > limit:
            raise PayloadTooLarge(f"request body is over this model's limit of {limit} bytes")
        return message

    return capped


async def _refuse(send: Send, err: MaasError) -> None:
    headers: list[tuple[bytes, bytes]] = []
    if err.code is ErrorCode.UNAUTHENTICATED:
        headers.append((b"www-authenticate", b'Bearer realm="maas"'))
    if isinstance(err, ResourceExhausted):
        headers.append((b"retry-after", retry_after_header(err)))
    elif err.code is ErrorCode.UNAVAILABLE:
        headers.append((b"retry-after", b"1"))
    await _send_error(send, HTTP_STATUS[err.code], str(err), headers)


async def _send_error(
    send: Send, status: int, message: str, headers: list[tuple[bytes, bytes]]
) -> None:
    body = orjson.dumps({"error": message})
    out = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": out})
    await send({"type": "http.response.body", "body": body})


def guarded_app(app: RestApp, data_plane: DataPlane, protection: Protection) -> GuardedApp:
    """`app` behind `protection`, with the data plane's request timeout."""
    return GuardedApp(
        app,
        protection,
        app.routes,
        lambda: data_plane.repository.model_names(),
        data_plane.config.request_timeout_s,
        shape_of=app.route_shape,
    )
