"""The v2 REST inference documents: JSON bodies and the binary tensor data extension.

A request body is a JSON header, optionally followed by binary tensor data; the
`Inference-Header-Content-Length` header gives the JSON part's length. Each input with
`parameters.binary_data_size` takes that many bytes, in input order, from the binary part.
Outputs are returned as binary when asked for per output (`parameters.binary_data`) or for the
whole request (`parameters.binary_data_output`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from maas.errors import InvalidInput
from maas.protocol.tensors import decode_json_data, decode_raw, encode_raw, json_data, parse_shape
from maas.protocol.types import InferRequest, InferResponse, InferTensor, RequestedOutput

HEADER_LENGTH = "inference-header-content-length"
JSON_TYPE = "application/json"
BINARY_TYPE = "application/octet-stream"
_DUMP_OPTIONS = orjson.OPT_SERIALIZE_NUMPY


@dataclass(frozen=True)
class EncodedResponse:
    """A response body; `header_length` is set when binary data follows the JSON part."""

    body: bytes
    header_length: int | None

    @property
    def content_type(self) -> str:
        return BINARY_TYPE if self.header_length is not None else JSON_TYPE


def decode_request(
    body: bytes, header_length: int | None, model_name: str, model_version: str | None
) -> InferRequest:
    """Parse an inference request body (JSON, or JSON + binary tensor data).

    Raises:
        InvalidInput: malformed JSON, a bad tensor, or binary data whose length does not add up.
    """
    view = memoryview(body)
    if header_length is None:
        header, binary = view, view[len(view) :]
    else:
        if not 0 <= header_length <= len(view):
            raise InvalidInput(
                f"Inference-Header-Content-Length {header_length} is outside the body "
                f"of {len(view)} bytes"
            )
        header, binary = view[:header_length], view[header_length:]
    try:
        doc = orjson.loads(header)
    except orjson.JSONDecodeError as err:
        raise InvalidInput(f"request body is not valid JSON: {err}") from None
    if not isinstance(doc, dict):
        raise InvalidInput("request body must be a JSON object")
    inputs, used = _decode_inputs(doc.get("inputs"), binary)
    if used != len(binary):
        raise InvalidInput(
            f"request has {len(binary)} bytes of binary data but its inputs' "
            f"binary_data_size add up to {used}"
        )
    parameters = _parameters(doc.get("parameters"), "request", "")
    request_id = doc.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidInput('"id" must be a string')
    return InferRequest(
        model_name=model_name,
        model_version=model_version,
        inputs=inputs,
        outputs=_decode_outputs(doc.get("outputs"), parameters),
        id=request_id,
        parameters=parameters,
    )


def _decode_inputs(items: Any, binary: memoryview) -> tuple[tuple[InferTensor, ...], int]:
    if not isinstance(items, list) or not items:
        raise InvalidInput('request needs "inputs": a non-empty list of tensors')
    inputs: list[InferTensor] = []
    offset = 0
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput('each input needs a "name"')
        name = item["name"]
        datatype = item.get("datatype")
        if not isinstance(datatype, str):
            raise InvalidInput(f'input "{name}" needs a "datatype"')
        shape = parse_shape(item.get("shape"), name)
        parameters = _parameters(item.get("parameters"), "input", name)
        size = parameters.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or isinstance(size, bool) or size < 0:
                raise InvalidInput(f'input "{name}": binary_data_size must be a byte count')
            if offset + size > len(binary):
                raise InvalidInput(
                    f'input "{name}" declares {size} bytes of binary data but only '
                    f"{len(binary) - offset} remain in the body"
                )
            data = decode_raw(binary[offset : offset + size], datatype, shape, name)
            offset += size
        elif "data" in item:
            data = decode_json_data(item["data"], datatype, name)
        else:
            raise InvalidInput(f'input "{name}" needs "data" or parameters.binary_data_size')
        inputs.append(InferTensor(name, datatype, shape, data, parameters))
    return tuple(inputs), offset


def _decode_outputs(
    items: Any, request_parameters: dict[str, Any]
) -> tuple[RequestedOutput, ...] | None:
    if items is None:
        return None
    if not isinstance(items, list):
        raise InvalidInput('"outputs" must be a list')
    default_binary = _flag(request_parameters.get("binary_data_output"), "binary_data_output")
    outputs: list[RequestedOutput] = []
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise InvalidInput('each requested output needs a "name"')
        name = item["name"]
        parameters = _parameters(item.get("parameters"), "output", name)
        binary = _flag(parameters.get("binary_data"), "binary_data")
        classification = parameters.get("classification", 0)
        if not isinstance(classification, int) or isinstance(classification, bool):
            raise InvalidInput(f'output "{name}": classification must be an integer')
        outputs.append(
            RequestedOutput(
                name,
                binary_data=default_binary if binary is None else binary,
                classification=classification,
                parameters=parameters,
            )
        )
    return tuple(outputs)


def _parameters(value: Any, kind: str, name: str) -> dict[str, Any]:
    """`value` as a parameters object; `kind` and `name` say whose (formatted only on error)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        where = f'{kind} "{name}"' if name else kind
        raise InvalidInput(f"{where}: parameters must be a JSON object")
    return value


def _flag(value: Any, name: str) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    raise InvalidInput(f"parameter {name} must be true or false")


def wants_binary(request: InferRequest) -> dict[str, bool]:
    """Output name -> whether it goes back as binary data."""
    default = request.parameters.get("binary_data_output") is True
    if request.outputs is None:
        return {} if not default else {"*": True}
    return {o.name: bool(o.binary_data) for o in request.outputs}


def encode_response(response: InferResponse, binary: dict[str, bool]) -> EncodedResponse:
    """Build the response body; outputs marked in `binary` go after the JSON header."""
    all_binary = binary.get("*", False)
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for tensor in response.outputs:
        entry: dict[str, Any] = {
            "name": tensor.name,
            "datatype": tensor.datatype,
            "shape": tensor.shape,
        }
        if all_binary or binary.get(tensor.name, False):
            raw = encode_raw(tensor.data)
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = json_data(tensor.data)
        outputs.append(entry)
    doc: dict[str, Any] = {
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": outputs,
    }
    if response.id is not None:
        doc["id"] = response.id
    if response.parameters:
        doc["parameters"] = response.parameters
    header = orjson.dumps(doc, option=_DUMP_OPTIONS)
    if not chunks:
        return EncodedResponse(header, None)
    return EncodedResponse(b"".join([header, *chunks]), len(header))
