"""TF Serving's REST API over the data plane.

    GET  /v1/models/{m}[/versions/{v}]           model status
    GET  /v1/models/{m}[/versions/{v}]/metadata  signature (a `serving_default` signature_def)
    POST /v1/models/{m}[/versions/{v}|/labels/{l}]:predict

Predict takes `{"instances": [...]}` (row format) or `{"inputs": ...}` (columnar) and answers
`{"predictions": [...]}` or `{"outputs": ...}` in the same layout; errors are `{"error": "..."}`
with the HTTP status the error class maps to. Version labels are our aliases.
"""

from __future__ import annotations

from typing import Any

import orjson

from maas.errors import InvalidInput
from maas.serving.dataplane import DataPlane
from maas.serving.response_size import Encoding, check_encoded
from maas.serving.rest.compat_tensors import (
    build_request,
    columns_from_inputs,
    columns_from_instances,
    output_rows,
    output_values,
)
from maas.serving.rest.handlers import HttpRequest, Reply, json_body, json_reply, model_name
from maas.signature import TensorSpec

_TF_DTYPES = {
    "FP16": "DT_HALF",
    "FP32": "DT_FLOAT",
    "FP64": "DT_DOUBLE",
    "INT8": "DT_INT8",
    "INT16": "DT_INT16",
    "INT32": "DT_INT32",
    "INT64": "DT_INT64",
    "UINT8": "DT_UINT8",
    "UINT16": "DT_UINT16",
    "UINT32": "DT_UINT32",
    "UINT64": "DT_UINT64",
    "BOOL": "DT_BOOL",
    "BYTES": "DT_STRING",
}


def match_tfserving(path: str) -> tuple[str, str | None, str | None] | None:
    """`/v1/models/digits/versions/2:predict` -> (`/v1/models/{m}/versions/{v}:predict`, ...)."""
    if not path.startswith("/v1/models/"):
        return None
    rest = path[len("/v1/models/") :]
    verb = ""
    if ":" in rest:
        rest, _, verb = rest.rpartition(":")
        verb = ":" + verb
    parts = rest.split("/")
    model = parts[0]
    if not model:
        return None
    if len(parts) >= 3 and parts[1] in ("versions", "labels"):
        tail = "/".join(parts[3:])
        shape = "/v1/models/{m}/versions/{v}" + (f"/{tail}" if tail else "") + verb
        return shape, model, parts[2]
    tail = "/".join(parts[1:])
    return "/v1/models/{m}" + (f"/{tail}" if tail else "") + verb, model, None


class TfServingHandlers:
    """TF Serving's model status, metadata and predict endpoints."""

    def __init__(self, data_plane: DataPlane) -> None:
        self._dp = data_plane

    async def status(self, request: HttpRequest) -> Reply:
        name = model_name(request)
        repository = self._dp.repository
        version = request.version
        if version and not version.isdigit():
            version = repository.resolve(name, version).version  # a label
        loaded = [version] if version else list(repository.version_names(name))
        for number in loaded:
            repository.resolve(name, number)  # unknown version: 404
        failed = {} if version else repository.failures(name)
        statuses = [_status(number, "AVAILABLE", "OK", "") for number in loaded]
        statuses += [_status(n, "END", "UNKNOWN", why) for n, why in sorted(failed.items())]
        return json_reply({"model_version_status": statuses})

    async def metadata(self, request: HttpRequest) -> Reply:
        name = model_name(request)
        loaded = self._dp.repository.peek(name, request.version)
        signature = loaded.model.signature
        doc = {
            "model_spec": {"name": name, "signature_name": "", "version": loaded.version},
            "metadata": {
                "signature_def": {
                    "signature_def": {
                        "serving_default": {
                            "inputs": {s.name: _tensor_info(s) for s in signature.inputs},
                            "outputs": {s.name: _tensor_info(s) for s in signature.outputs},
                            "method_name": "tensorflow/serving/predict",
                        }
                    }
                }
            },
        }
        return json_reply(doc)

    async def predict(self, request: HttpRequest) -> Reply:
        name = model_name(request)
        doc = _body(request.body)
        specs = self._dp.signature(name, request.version).inputs
        has_rows, has_columns = "instances" in doc, "inputs" in doc
        if has_rows == has_columns:
            raise InvalidInput('the request needs exactly one of "instances" or "inputs"')
        if has_rows:
            columns = columns_from_instances(doc["instances"], specs)
        else:
            columns = columns_from_inputs(doc["inputs"], specs)
        infer = build_request(name, request.version, columns, specs)
        response = await self._dp.infer(infer, request.context)
        check_encoded(response, self._dp.config.max_response_bytes, Encoding.JSON)
        headers = (("x-model-version", response.model_version),)
        if has_rows:
            body: dict[str, Any] = {"predictions": output_rows(response)}
        else:
            values = output_values(response)
            body = {"outputs": next(iter(values.values())) if len(values) == 1 else values}
        return Reply(200, orjson.dumps(body), headers=headers)


def _status(version: str, state: str, code: str, message: str) -> dict[str, Any]:
    return {
        "version": version,
        "state": state,
        "status": {"error_code": code, "error_message": message},
    }


def _tensor_info(spec: TensorSpec) -> dict[str, Any]:
    return {
        "dtype": _TF_DTYPES.get(spec.datatype, "DT_INVALID"),
        "tensor_shape": {"dim": [{"size": str(d), "name": ""} for d in spec.shape]},
        "name": spec.name,
    }


def _body(body: bytes) -> dict[str, Any]:
    doc = json_body(body)
    if not isinstance(doc, dict):
        raise InvalidInput('the body must be a JSON object with "instances" or "inputs"')
    return doc
