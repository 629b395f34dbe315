"""`GuardInterceptor`: authentication, access control, limits and deadlines for gRPC calls.

Each method of `inference.GRPCInferenceService` names its endpoint kind
(`security.acl.GRPC_METHOD_KINDS`); the model comes from the request message, so the check runs
in a wrapper around the method's handler. Credentials come from the `authorization` metadata
(`Bearer <key|jwt>`). The health and reflection services stay open.

Refusals end the call with UNAUTHENTICATED, PERMISSION_DENIED or RESOURCE_EXHAUSTED (with the
seconds to wait in the `retry-after` trailing metadata). In a `ModelStreamInfer` stream every
request is checked; a rate-limited stream is paced (it waits for the next token) rather than
ended, since its requests arrive one after another anyway.

The call's deadline is honoured: a call whose deadline has passed is refused; the servicer gives
an inference request the time the call has left as its context's deadline.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from maas.errors import DeadlineExceeded, MaasError, ResourceExhausted
from maas.protocol.proto import grpc_service_pb2 as pb
from maas.security.acl import GRPC_METHOD_KINDS, Action, Principal, allows
from maas.serving.admission import Admission
from maas.serving.grpc.status import grpc_status
from maas.serving.protection import Protection

log = logging.getLogger(__name__)

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
AUTHORIZATION_KEY = "authorization"
RETRY_AFTER_KEY = "retry-after"
UNCLASSIFIED_KIND = "management"  # a method nobody classified needs admin
STREAM_PACE_MAX_S = 1.0  # longest single wait of a paced stream before it checks again

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


class GuardInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc.aio is untyped
    """Checks every call of the inference service against the protection's guard and limits.

    Args:
        protection: the guard and per-model limits.
    """

    def __init__(self, protection: Protection, admission: Admission) -> None:
        self._protection = protection
        self._admission = admission
        # method path -> (its handler, the checking wrapper): built once per method, not per
        # call; the wrapper reads the caller's credentials from each call's metadata.
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        path = handler_call_details.method
        cached = self._wrapped.get(path)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, path)
        self._wrapped[path] = (handler, wrapped)
        return wrapped

    def _wrap(self, handler: grpc.RpcMethodHandler, path: str) -> grpc.RpcMethodHandler:
        service, _, method = path.lstrip("/").partition("/")
        if service != SERVICE_NAME:
            return handler  # health and reflection: open
        kind = GRPC_METHOD_KINDS.get(method, UNCLASSIFIED_KIND)
        if handler.unary_unary is not None:
            return self._wrap_unary(handler, kind)
        if handler.stream_stream is not None:
            return self._wrap_stream(handler, kind)
        return handler  # the service has no other call shapes

    def _wrap_unary(self, handler: grpc.RpcMethodHandler, kind: str) -> grpc.RpcMethodHandler:
        inner = handler.unary_unary

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            try:
                _check_deadline(context)
                credentials = _credentials(context.invocation_metadata())
                principal = await self._admit(credentials, kind, _model_of(request), request)
            except MaasError as err:
                await _abort(context, err)
            response = await inner(request, context)
            if principal is not None and isinstance(response, pb.RepositoryIndexResponse):
                _keep_readable(response, principal)
            return response

        return grpc.unary_unary_rpc_method_handler(
            unary,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _wrap_stream(self, handler: grpc.RpcMethodHandler, kind: str) -> grpc.RpcMethodHandler:
        inner = handler.stream_stream

        async def stream(
            requests: AsyncIterator[Any], context: grpc.aio.ServicerContext
        ) -> AsyncIterator[Any]:
            guard = self._protection.guard
            credentials = _credentials(context.invocation_metadata())
            try:
                _check_deadline(context)
                if guard is not None:  # refuse bad credentials before reading anything
                    guard.authenticator.authenticate(credentials)
            except MaasError as err:
                await _abort(context, err)

            async def checked() -> AsyncIterator[Any]:
                async for request in requests:
                    try:
                        await self._admit_paced(credentials, kind, request)
                    except MaasError as err:
                        await _abort(context, err)
                    yield request

            async for response in inner(checked(), context):
                yield response

        return grpc.stream_stream_rpc_method_handler(
            stream,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    async def _admit(
        self, credentials: str | None, kind: str, model: str | None, request: Any
    ) -> Principal | None:
        principal = await self._admission.admit(credentials, kind, model)
        if isinstance(request, pb.ModelInferRequest):
            self._admission.check_size(request.ByteSize(), model)
        return principal

    async def _admit_paced(self, credentials: str | None, kind: str, request: Any) -> None:
        while True:
            try:
                await self._admit(credentials, kind, _model_of(request), request)
                return
            except ResourceExhausted as err:
                wait_s = err.retry_after_s if err.retry_after_s is not None else 0.05
                await asyncio.sleep(min(max(wait_s, 0.001), STREAM_PACE_MAX_S))


def _keep_readable(response: pb.RepositoryIndexResponse, principal: Principal) -> None:
    """Drop the models the caller may not read from a repository index."""
    kept = []
    for model in response.models:
        if allows(principal.scopes, Action.READ, model.name):
            copy = pb.RepositoryIndexResponse.ModelIndex()
            copy.CopyFrom(model)  # detached from `response` before its list is emptied
            kept.append(copy)
    if len(kept) != len(response.models):
        del response.models[:]
        response.models.extend(kept)


def _credentials(metadata: Any) -> str | None:
    for key, value in metadata or ():
        if key == AUTHORIZATION_KEY:
            return value.decode("latin-1") if isinstance(value, bytes) else str(value)
    return None


def _model_of(request: Any) -> str | None:
    """The model a request message is about (None: not about one model)."""
    for field in ("model_name", "name"):
        value = getattr(request, field, None)
        if isinstance(value, str) and value:
            return value
    return None


def _check_deadline(context: grpc.aio.ServicerContext) -> None:
    remaining = context.time_remaining()
    if remaining is not None and remaining <= 0:
        raise DeadlineExceeded("the call's deadline passed before it was answered")


async def _abort(context: grpc.aio.ServicerContext, err: MaasError) -> None:
    if isinstance(err, ResourceExhausted):
        seconds = err.retry_after_s if err.retry_after_s is not None else 1.0
        context.set_trailing_metadata(((RETRY_AFTER_KEY, str(max(1, math.ceil(seconds)))),))
    await context.abort(grpc_status(err.code), str(err))


def server_options(protection: Protection | None, admission: Admission) -> dict[str, Any]:
    """Keyword arguments for `grpc.aio.server`: the guard interceptor and the call cap."""
    if protection is None:
        return {}
    options: dict[str, Any] = {"interceptors": [GuardInterceptor(protection, admission)]}
    if protection.max_connections is not None:
        options["maximum_concurrent_rpcs"] = protection.max_connections
    return options


def bind_port(server: grpc.aio.Server, address: str, protection: Protection | None) -> int:
    """Listen on `address`, over TLS when the protection has a certificate; the bound port."""
    if protection is not None and protection.tls is not None:
        return int(server.add_secure_port(address, protection.tls.grpc_credentials()))
    return int(server.add_insecure_port(address))
