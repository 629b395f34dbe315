"""How failures become gRPC statuses: the one table from maas's error codes to status codes, and
the one wrapper every method of the servicer goes through."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, NoReturn, TypeVar

import grpc

from maas.errors import ErrorCode, MaasError

log = logging.getLogger(__name__)

GRPC_STATUS: dict[ErrorCode, grpc.StatusCode] = {
    ErrorCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    ErrorCode.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.CONFLICT: grpc.StatusCode.ALREADY_EXISTS,
    # gRPC reports a message over the size limit as RESOURCE_EXHAUSTED; we do the same.
    ErrorCode.PAYLOAD_TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorCode.INTERNAL: grpc.StatusCode.INTERNAL,
}

Servicer = TypeVar("Servicer")
Request = TypeVar("Request")
Response = TypeVar("Response")


def grpc_status(code: ErrorCode) -> grpc.StatusCode:
    """The gRPC status code for an error code (INTERNAL for one the table does not know)."""
    return GRPC_STATUS.get(code, grpc.StatusCode.INTERNAL)


def maps_errors(
    method: Callable[[Servicer, Request, grpc.aio.ServicerContext], Awaitable[Response]],
) -> Callable[[Servicer, Request, grpc.aio.ServicerContext], Coroutine[Any, Any, Response]]:
    """Wrap a unary servicer method so that whatever it raises ends the call with its status
    (see `abort`); a status the method set itself with `context.abort` passes unchanged."""

    @functools.wraps(method)
    async def mapped(
        servicer: Servicer, request: Request, context: grpc.aio.ServicerContext
    ) -> Response:
        try:
            return await method(servicer, request, context)
        except grpc.aio.AbortError:
            raise
        except Exception as err:
            await abort(context, err)

    return mapped


async def abort(context: grpc.aio.ServicerContext, err: Exception) -> NoReturn:
    """End the call with the status for `err`: its code's status and message for a `MaasError`,
    INTERNAL with a request id (and the traceback in the log) for anything else."""
    if isinstance(err, MaasError):
        await context.abort(grpc_status(err.code), str(err))
    await context.abort(grpc.StatusCode.INTERNAL, log_bug(err))
    raise AssertionError("unreachable: context.abort raises")  # pragma: no cover


def log_bug(err: Exception) -> str:
    """Log an unexpected exception with a new request id; the message the client gets."""
    request_id = uuid.uuid4().hex
    log.error("grpc.request_failed", exc_info=err, extra={"request_id": request_id})
    return f"internal error (request id {request_id})"
