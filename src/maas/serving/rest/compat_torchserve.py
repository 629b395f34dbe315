"""TorchServe's inference API over the data plane.

    POST /predictions/{m}[/{v}]   body: a JSON array of rows (or one row); `{"data": ...}` and
                                  `{"instances": ...}` objects are read the same way
    GET  /ping                    `{"status": "Healthy"}`

A list of rows is answered by a list of predictions, one row by one prediction: the output
value, or an object of named outputs when the model has several. Errors use TorchServe's shape:
`{"code": 404, "type": "ModelNotFoundException", "message": "..."}`. Versions may be written
TorchServe's way (`2.0`).
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from maas.errors import ErrorCode, InvalidInput, MaasError
from maas.logs import request_id_var
from maas.serving.dataplane import DataPlane
from maas.serving.response_size import Encoding, check_encoded
from maas.serving.rest.compat_tensors import build_request, columns_from_instances, output_rows
from maas.serving.rest.handlers import HTTP_STATUS, HttpRequest, Reply, json_body

log = logging.getLogger(__name__)

_ERROR_TYPES = {
    ErrorCode.INVALID_ARGUMENT: "BadRequestException",
    ErrorCode.NOT_FOUND: "ModelNotFoundException",
    ErrorCode.PAYLOAD_TOO_LARGE: "BadRequestException",
    ErrorCode.RESOURCE_EXHAUSTED: "ServiceUnavailableException",
    ErrorCode.UNAVAILABLE: "ServiceUnavailableException",
    ErrorCode.DEADLINE_EXCEEDED: "RequestTimeoutException",
    ErrorCode.UNAUTHENTICATED: "InvalidKeyException",
    ErrorCode.PERMISSION_DENIED: "InvalidKeyException",
    ErrorCode.INTERNAL: "InternalServerException",
}


def match_torchserve(path: str) -> tuple[str, str | None, str | None] | None:
    """`/predictions/digits/2` -> (`/predictions/{m}/{v}`, digits, 2)."""
    if not path.startswith("/predictions/"):
        return None
    parts = path[len("/predictions/") :].split("/")
    if len(parts) == 1 and parts[0]:
        return "/predictions/{m}", parts[0], None
    if len(parts) == 2 and all(parts):
        return "/predictions/{m}/{v}", parts[0], parts[1]
    return None


class TorchServeHandlers:
    """`/predictions/{m}[/{v}]`."""

    def __init__(self, data_plane: DataPlane) -> None:
        self._dp = data_plane

    async def predictions(self, request: HttpRequest) -> Reply:
        try:
            return await self._predict(request)
        except MaasError as err:
            if err.code is ErrorCode.INTERNAL:
                log.error("request.failed", exc_info=err)
                return error_reply(err.code, f"internal error; request id {request_id_var.get()}")
            return error_reply(err.code, str(err))

    async def _predict(self, request: HttpRequest) -> Reply:
        name = request.model or ""
        version = _version(request.version)
        specs = self._dp.signature(name, version).inputs
        rows = _rows(request.body)
        single = len(specs) == 1 and _depth(rows) == len(specs[0].shape) - 1
        columns = columns_from_instances([rows] if single else rows, specs)
        response = await self._dp.infer(
            build_request(name, version, columns, specs), request.context
        )
        check_encoded(response, self._dp.config.max_response_bytes, Encoding.JSON)
        predictions = output_rows(response)
        body = predictions[0] if single else predictions
        headers = (("x-model-version", response.model_version),)
        return Reply(200, orjson.dumps(body), headers=headers)


def error_reply(code: ErrorCode, message: str) -> Reply:
    """TorchServe's error document."""
    status = HTTP_STATUS[code]
    doc = {"code": status, "type": _ERROR_TYPES[code], "message": message}
    return Reply(status, orjson.dumps(doc))


def _rows(body: bytes) -> Any:
    doc = json_body(body)
    if isinstance(doc, dict):
        for key in ("instances", "data"):
            if key in doc:
                return doc[key]
        raise InvalidInput('a JSON object body needs "data" or "instances"')
    if not isinstance(doc, list) or not doc:
        raise InvalidInput("the body must be a non-empty JSON array of rows")
    return doc


def _depth(value: Any) -> int:
    """How deeply lists nest, following first items: one row of features is 1."""
    depth = 0
    while isinstance(value, list):
        depth += 1
        value = value[0] if value else None
    return depth


def _version(text: str | None) -> str | None:
    """TorchServe writes versions as `1.0`; ours are whole numbers."""
    if text is None:
        return None
    whole, dot, fraction = text.partition(".")
    if dot and whole.isdigit() and set(fraction) <= {"0"}:
        return whole
    return text
