"""SageMaker's inference container contract over the data plane.

    GET  /ping          200 while the server is ready (SageMaker's health check)
    POST /invocations   JSON `{"instances": [...]}`, `{"inputs": ...}` or a bare list of rows

The model is the only one served, or the one the `X-Amzn-SageMaker-Target-Model` header names
(multi-model endpoints send the artifact's relative path, e.g. `digits.tar.gz`; `NAME@REF` picks a
version). Answers are `{"predictions": [...]}` (or `{"outputs": ...}` for `inputs`); errors are
`{"error": "..."}` with a 4xx or 5xx status, which SageMaker hands to the caller as a ModelError.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from maas.errors import InvalidInput, ModelNotFound
from maas.serving.dataplane import DataPlane
from maas.serving.response_size import Encoding, check_encoded
from maas.serving.rest.compat_tensors import (
    build_request,
    columns_from_inputs,
    columns_from_instances,
    output_rows,
    output_values,
)
from maas.serving.rest.handlers import Headers, HttpRequest, Reply, json_body, json_reply

TARGET_MODEL_HEADER = "x-amzn-sagemaker-target-model"
_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")


class SageMakerHandlers:
    """`/ping` and `/invocations`."""

    def __init__(self, data_plane: DataPlane) -> None:
        self._dp = data_plane

    async def ping(self, request: HttpRequest) -> Reply:
        """TorchServe's answer shape; SageMaker only looks at the status."""
        is_ready = await self._dp.ready()
        status = "Healthy" if is_ready else "Unhealthy"
        return json_reply({"status": status}, 200 if is_ready else 503)

    async def invocations(self, request: HttpRequest) -> Reply:
        name, version = sagemaker_target(request.headers, self._dp.repository.model_names())
        if name is None:
            raise InvalidInput(
                "several models are served; name one in X-Amzn-SageMaker-Target-Model"
            )
        doc = _body(request.body)
        specs = self._dp.signature(name, version).inputs
        as_columns = isinstance(doc, dict) and "inputs" in doc
        if isinstance(doc, dict):
            if ("instances" in doc) == as_columns:
                raise InvalidInput('the request needs exactly one of "instances" or "inputs"')
            columns = (
                columns_from_inputs(doc["inputs"], specs)
                if as_columns
                else columns_from_instances(doc["instances"], specs)
            )
        else:
            columns = columns_from_instances(doc, specs)
        response = await self._dp.infer(
            build_request(name, version, columns, specs), request.context
        )
        check_encoded(response, self._dp.config.max_response_bytes, Encoding.JSON)
        if as_columns:
            values = output_values(response)
            body: dict[str, Any] = {
                "outputs": next(iter(values.values())) if len(values) == 1 else values
            }
        else:
            body = {"predictions": output_rows(response)}
        headers = (("x-model-version", response.model_version),)
        return Reply(200, orjson.dumps(body), headers=headers)


def sagemaker_target(headers: Headers, served: Sequence[str]) -> tuple[str | None, str | None]:
    """The model and version an `/invocations` request is for: its target-model header (a
    model archive name, `NAME[@REF][.tar.gz]`), else the one served model (None: several).

    Raises:
        ModelNotFound: the header names no model.
    """
    given = headers.get(TARGET_MODEL_HEADER)
    if given is None:
        return (served[0] if len(served) == 1 else None), None
    text = given.strip().rsplit("/", 1)[-1]
    for suffix in _ARCHIVE_SUFFIXES:
        text = text.removesuffix(suffix)
    name, _, ref = text.partition("@")
    if not name:
        raise ModelNotFound("X-Amzn-SageMaker-Target-Model names no model")
    return name, ref or None


def _body(body: bytes) -> Any:
    doc = json_body(body)
    if not isinstance(doc, dict | list):
        raise InvalidInput('the body must be a JSON list of rows or an object with "instances"')
    return doc
