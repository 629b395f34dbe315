"""The REST documents: JSON and binary tensor data in, JSON and binary out."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from maas.errors import InvalidInput
from maas.protocol.http import decode_request, encode_response, wants_binary
from maas.protocol.types import InferResponse, InferTensor


def binary_request(
    inputs: list[tuple[dict[str, object], bytes]], **doc: object
) -> tuple[bytes, int]:
    header = json.dumps(
        {
            "inputs": [
                {**meta, "parameters": {"binary_data_size": len(raw)}} for meta, raw in inputs
            ],
            **doc,
        }
    ).encode()
    return header + b"".join(raw for _, raw in inputs), len(header)


def test_json_request_with_nested_and_flat_data() -> None:
    body = json.dumps(
        {
            "id": "7",
            "inputs": [
                {"name": "a", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2], [3, 4]]},
                {"name": "b", "datatype": "INT64", "shape": [3], "data": [1, 2, 3]},
                {"name": "c", "datatype": "BYTES", "shape": [2], "data": ["hi", "yo"]},
                {"name": "d", "datatype": "BOOL", "shape": [2], "data": [True, False]},
            ],
            "outputs": [{"name": "y", "parameters": {"binary_data": True, "classification": 2}}],
            "parameters": {"timeout": 1000},
        }
    ).encode()
    request = decode_request(body, None, "m", "2")
    assert (request.model_name, request.model_version, request.id) == ("m", "2", "7")
    a, b, c, d = request.inputs
    assert a.data.dtype == np.float32
    assert a.data.tolist() == [[1, 2], [3, 4]]
    assert b.data.dtype == np.int64
    assert c.data.tolist() == [b"hi", b"yo"]
    assert d.data.tolist() == [True, False]
    assert request.outputs is not None
    (output,) = request.outputs
    assert (output.name, output.binary_data, output.classification) == ("y", True, 2)
    assert request.parameters == {"timeout": 1000}


def test_binary_inputs_are_read_in_order() -> None:
    x = np.arange(6, dtype=np.float32)
    words = [b"ab", b"", b"xyz"]
    framed = b"".join(struct.pack("<I", len(w)) + w for w in words)
    body, length = binary_request(
        [
            ({"name": "x", "datatype": "FP32", "shape": [2, 3]}, x.tobytes()),
            ({"name": "s", "datatype": "BYTES", "shape": [3]}, framed),
        ],
        parameters={"binary_data_output": True},
    )
    request = decode_request(body, length, "m", None)
    np.testing.assert_array_equal(request.inputs[0].data, x)
    assert request.inputs[1].data.tolist() == words
    assert wants_binary(request) == {"*": True}


@pytest.mark.parametrize(
    ("body", "header_length", "message"),
    [
        (b"{", None, "not valid JSON"),
        (b'"x"', None, "JSON object"),
        (b'{"inputs": {}}', None, '"inputs"'),
        (b'{"inputs": [{"name": "a"}]}', None, '"datatype"'),
        (b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": "2"}]}', None, "shape"),
        (b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1]}]}', None, '"data"'),
        (
            b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [2], "data": [[1], [2, 3]]}]}',
            None,
            "cannot be read as FP32",
        ),
        (
            b'{"inputs": [{"name": "a", "datatype": "BYTES", "shape": [1], "data": [1]}]}',
            None,
            "strings for BYTES",
        ),
        (
            b'{"inputs": [{"name": "a", "datatype": "BOOL", "shape": [1], "data": [1]}]}',
            None,
            "true/false",
        ),
        (
            b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": [1]}],'
            b' "outputs": [{"name": "y", "parameters": {"binary_data": 1}}]}',
            None,
            "true or false",
        ),
        (
            b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": [1]}], "id": 5}',
            None,
            '"id"',
        ),
        (b"{}", 10, "outside the body"),
        (
            b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": [1]}],'
            b' "parameters": [1]}',
            None,
            "^request: parameters must be a JSON object",
        ),
        (
            b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": [1],'
            b' "parameters": 3}]}',
            None,
            '^input "a": parameters must be a JSON object',
        ),
        (
            b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [1], "data": [1]}],'
            b' "outputs": [{"name": "y", "parameters": "x"}]}',
            None,
            '^output "y": parameters must be a JSON object',
        ),
    ],
)
def test_malformed_documents_say_what_is_wrong(
    body: bytes, header_length: int | None, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        decode_request(body, header_length, "m", None)


def test_bad_bytes_framing_is_refused() -> None:
    body, length = binary_request(
        [({"name": "s", "datatype": "BYTES", "shape": [1]}, struct.pack("<I", 10) + b"abc")]
    )
    with pytest.raises(InvalidInput, match="past the end"):
        decode_request(body, length, "m", None)


def test_response_mixes_json_and_binary_outputs() -> None:
    probabilities = np.array([[0.25, 0.75]], dtype=np.float32)
    labels = np.array([1], dtype=np.int64)
    strings = np.array([b"0.75:1:dog"], dtype=object)
    response = InferResponse(
        "m",
        "3",
        (
            InferTensor("p", "FP32", (1, 2), probabilities),
            InferTensor("l", "INT64", (1,), labels),
            InferTensor("s", "BYTES", (1,), strings),
        ),
        id="r1",
    )
    encoded = encode_response(response, {"p": True, "l": False, "s": True})
    assert encoded.header_length is not None
    assert encoded.content_type == "application/octet-stream"
    header = json.loads(encoded.body[: encoded.header_length])
    assert header["id"] == "r1"
    assert header["model_version"] == "3"
    p, lab, s = header["outputs"]
    assert p["parameters"] == {"binary_data_size": 8}
    assert lab["data"] == [1]
    assert s["parameters"] == {"binary_data_size": 4 + 10}
    tail = encoded.body[encoded.header_length :]
    np.testing.assert_array_equal(np.frombuffer(tail[:8], dtype=np.float32), [0.25, 0.75])
    assert tail[8:] == struct.pack("<I", 10) + b"0.75:1:dog"
    as_json = encode_response(response, {})
    assert as_json.header_length is None
    outputs = json.loads(as_json.body)["outputs"]
    assert outputs[0]["data"] == [0.25, 0.75]
    assert outputs[2]["data"] == ["0.75:1:dog"]
