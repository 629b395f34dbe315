"""REST endpoint handlers: each turns one HTTP request into a data-plane call and a `Reply`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from maas.errors import ErrorCode, InvalidInput, MaasError, ModelNotFound, PayloadTooLarge
from maas.protocol.http import HEADER_LENGTH, decode_request, encode_response, wants_binary
from maas.protocol.types import InferResponse, InferTensor, ModelMetadata
from maas.serving.dataplane import DataPlane
from maas.serving.response_size import Encoding, check_encoded

if TYPE_CHECKING:
    from maas.security.acl import Principal
    from maas.serving.context import RequestContext

JSON_TYPE = "application/json"
MODEL_VERSION_HEADER = "x-model-version"  # which version answered (a route may pick any)
_HEADER_LENGTH_KEY = HEADER_LENGTH.lower()

# The one table from error class to HTTP status.
HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.UNAUTHENTICATED: 401,
    ErrorCode.PERMISSION_DENIED: 403,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.CONFLICT: 409,
    ErrorCode.PAYLOAD_TOO_LARGE: 413,
    ErrorCode.RESOURCE_EXHAUSTED: 429,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.DEADLINE_EXCEEDED: 504,
    ErrorCode.INTERNAL: 500,
}


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP response to send: status, body, content type and extra headers; a streamed
    response has `stream` (its chunks, sent as they come) instead of a body."""

    status: int
    body: bytes
    content_type: str = JSON_TYPE
    headers: tuple[tuple[str, str], ...] = ()
    stream: AsyncIterator[bytes] | None = None


class Headers(Protocol):
    """Request headers by lower-case name (the HTTP server's own mapping)."""

    def get(self, key: str, default: None = None) -> str | None: ...
    def get_all(self, key: str) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """What a handler needs from the HTTP request: route parameters, headers, the body and the
    request's context (id, deadline, caller)."""

    model: str | None
    version: str | None
    headers: Headers
    body: bytes
    context: RequestContext

    @property
    def principal(self) -> Principal | None:
        """The authenticated caller (None: no guard)."""
        return self.context.principal


def json_reply(doc: Any, status: int = 200) -> Reply:
    return Reply(status, orjson.dumps(doc))


RETRY_AFTER_S = "1"  # an overloaded queue drains within about a second at serving rates


def error_reply(status: int, message: str) -> Reply:
    """`{"error": message}`; a 503 also says when to retry."""
    headers = (("retry-after", RETRY_AFTER_S),) if status == 503 else ()
    return Reply(status, orjson.dumps({"error": message}), headers=headers)


class Handlers:
    """The v2 REST endpoints over one data plane."""

    def __init__(self, data_plane: DataPlane) -> None:
        self._dp = data_plane

    async def live(self, request: HttpRequest) -> Reply:
        is_live = await self._dp.live()
        return json_reply({"live": is_live}, 200 if is_live else 503)

    async def ready(self, request: HttpRequest) -> Reply:
        is_ready = await self._dp.ready()
        return json_reply({"ready": is_ready}, 200 if is_ready else 503)

    async def server_metadata(self, request: HttpRequest) -> Reply:
        meta = self._dp.server_metadata()
        return json_reply(
            {"name": meta.name, "version": meta.version, "extensions": list(meta.extensions)}
        )

    async def model_metadata(self, request: HttpRequest) -> Reply:
        meta = self._dp.model_metadata(model_name(request), request.version)
        return json_reply(metadata_doc(meta))

    async def model_ready(self, request: HttpRequest) -> Reply:
        name = model_name(request)
        if await self._dp.model_ready(name, request.version):
            return json_reply({"name": name, "ready": True})
        self._dp.model_metadata(name, request.version)  # unknown model or version: 404
        return json_reply({"name": name, "ready": False}, 503)

    async def model_config(self, request: HttpRequest) -> Reply:
        return json_reply(self._dp.model_config(model_name(request), request.version))

    async def model_stats(self, request: HttpRequest) -> Reply:
        return json_reply(self._dp.model_statistics(request.model, request.version))

    async def metrics(self, request: HttpRequest) -> Reply:
        body, content_type = self._dp.metrics.exposition()
        return Reply(200, body, content_type)

    async def infer(self, request: HttpRequest) -> Reply:
        return await answer_inference(self._dp, request, self._dp.infer)


async def answer_inference(
    data_plane: DataPlane,
    request: HttpRequest,
    run: Callable[..., Awaitable[InferResponse]],
) -> Reply:
    """Decode a v2 inference body, call `run(request, context)`, encode its response.

    Shared by `/infer` and the endpoints that take the same request shape (`/explain`).
    """
    model = model_name(request)
    try:
        header_length = header_length_of(request.headers)
        infer_request = decode_request(request.body, header_length, model, request.version)
    except MaasError as err:
        data_plane.count_rejected(model, request.version, "rest", err.code)
        raise
    response = await run(infer_request, request.context)
    binary = wants_binary(infer_request)
    check_encoded(response, data_plane.config.max_response_bytes, rest_encoding(binary))
    encoded = encode_response(response, binary)
    answered = ((MODEL_VERSION_HEADER, response.model_version),)
    if encoded.header_length is None:
        return Reply(200, encoded.body, headers=answered)
    return Reply(
        200,
        encoded.body,
        "application/octet-stream",
        ((_HEADER_LENGTH_KEY, str(encoded.header_length)), *answered),
    )


def rest_encoding(binary: dict[str, bool]) -> Callable[[InferTensor], Encoding]:
    """How each output of a v2 REST answer travels, from `wants_binary`'s choices."""
    every = binary.get("*", False)

    def encoding(tensor: InferTensor) -> Encoding:
        return Encoding.RAW if every or binary.get(tensor.name, False) else Encoding.JSON

    return encoding


def metadata_doc(meta: ModelMetadata) -> dict[str, Any]:
    """The JSON form of model metadata."""
    return {
        "name": meta.name,
        "versions": list(meta.versions),
        "platform": meta.platform,
        "inputs": [spec.to_dict() for spec in meta.inputs],
        "outputs": [spec.to_dict() for spec in meta.outputs],
        "parameters": meta.parameters,
    }


def model_name(request: HttpRequest) -> str:
    """The model named in the request's path.

    Raises:
        ModelNotFound: the path names none.
    """
    if not request.model:
        raise ModelNotFound("no model named in the path")
    return request.model


def json_body(body: bytes) -> Any:
    """The request body parsed as JSON (any JSON value; callers check its shape).

    Raises:
        InvalidInput: the body is not JSON.
    """
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as err:
        raise InvalidInput(f"the body is not JSON: {err}") from None


def header_length_of(headers: Headers) -> int | None:
    """The `Inference-Header-Content-Length` of a binary request, None for plain JSON.

    Raises:
        InvalidInput: the header is not a number.
    """
    value = headers.get(_HEADER_LENGTH_KEY)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"Inference-Header-Content-Length {value!r} is not a number") from None


def check_declared_length(headers: Headers, limit: int) -> None:
    """Refuse a body whose Content-Length is over `limit` before reading it."""
    value = headers.get("content-length")
    if value is None:
        return
    try:
        length = int(value)
    except ValueError:
        raise InvalidInput("Content-Length is not a number") from None
    if length > limit:
        raise PayloadTooLarge(f"request body of {length} bytes is over the limit of {limit}")
