"""The gRPC tensor codec on its own: every datatype, typed and raw, and what it refuses."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from maas.errors import InvalidInput
from maas.protocol.proto import grpc_service_pb2 as pb
from maas.protocol.types import InferResponse, InferTensor
from maas.serving.grpc.codec import (
    CONTENTS_FIELD,
    decode_infer_request,
    decode_parameters,
    encode_infer_response,
    encode_parameters,
    tensor_to_raw,
)

Tensor = pb.ModelInferRequest.InferInputTensor
NUMERIC = {
    "BOOL": np.array([[True, False, True]]),
    "INT8": np.array([[-128, 0, 127]], dtype=np.int8),
    "INT16": np.array([[-32768, 1, 32767]], dtype=np.int16),
    "INT32": np.array([[-(2**31), 2, 2**31 - 1]], dtype=np.int32),
    "INT64": np.array([[-(2**63), 3, 2**63 - 1]], dtype=np.int64),
    "UINT8": np.array([[0, 1, 255]], dtype=np.uint8),
    "UINT16": np.array([[0, 1, 65535]], dtype=np.uint16),
    "UINT32": np.array([[0, 1, 2**32 - 1]], dtype=np.uint32),
    "UINT64": np.array([[0, 1, 2**64 - 1]], dtype=np.uint64),
    "FP32": np.array([[-1.5, 0.0, 3.25]], dtype=np.float32),
    "FP64": np.array([[-1.5e300, 0.0, 1e-300]], dtype=np.float64),
}


def request_of(tensor: Tensor, raw: list[bytes] | None = None) -> pb.ModelInferRequest:
    return pb.ModelInferRequest(model_name="m", inputs=[tensor], raw_input_contents=raw or [])


@pytest.mark.parametrize("datatype", list(NUMERIC))
def test_typed_contents_decode_to_the_datatype(datatype: str) -> None:
    data = NUMERIC[datatype]
    contents = pb.InferTensorContents()
    getattr(contents, CONTENTS_FIELD[datatype]).extend(data.ravel().tolist())
    tensor = Tensor(name="x", datatype=datatype, shape=[1, 3], contents=contents)
    [decoded] = decode_infer_request(request_of(tensor)).inputs
    assert decoded.data.dtype == data.dtype
    np.testing.assert_array_equal(decoded.data, data)


@pytest.mark.parametrize("datatype", [*NUMERIC, "FP16"])
def test_raw_contents_round_trip(datatype: str) -> None:
    data = NUMERIC.get(datatype, np.array([[0.5, -2.0, 65504.0]], dtype=np.float16))
    raw = tensor_to_raw(InferTensor("x", datatype, data.shape, data))
    assert raw == data.astype(data.dtype.newbyteorder("<")).tobytes()
    tensor = Tensor(name="x", datatype=datatype, shape=[1, 3])
    [decoded] = decode_infer_request(request_of(tensor, [raw])).inputs
    np.testing.assert_array_equal(decoded.data, data)
    assert decoded.shape == (1, 3)


def test_bytes_raw_contents_are_length_prefixed() -> None:
    items = [b"a", b"", b"hello"]
    raw = b"".join(struct.pack("<I", len(b)) + b for b in items)
    tensor = Tensor(name="s", datatype="BYTES", shape=[3])
    [decoded] = decode_infer_request(request_of(tensor, [raw])).inputs
    assert decoded.data.tolist() == items
    strings = np.array(["a", "", "hello"], dtype=object)  # str elements are sent as UTF-8
    assert tensor_to_raw(InferTensor("s", "BYTES", (3,), strings)) == raw


def test_bytes_typed_contents_decode_to_objects() -> None:
    contents = pb.InferTensorContents(bytes_contents=[b"x", b"yz"])
    tensor = Tensor(name="s", datatype="BYTES", shape=[2, 1], contents=contents)
    [decoded] = decode_infer_request(request_of(tensor)).inputs
    assert decoded.data.shape == (2, 1)
    assert decoded.data.ravel().tolist() == [b"x", b"yz"]


def test_typed_request_gets_typed_outputs_unless_a_datatype_has_no_field() -> None:
    probabilities = np.array([[0.25, 0.75]], dtype=np.float32)
    labels = np.array([1], dtype=np.int64)
    response = InferResponse(
        "m",
        "1",
        (
            InferTensor("p", "FP32", (1, 2), probabilities),
            InferTensor("l", "INT64", (1,), labels),
        ),
        id="req-1",
    )
    typed = encode_infer_response(response, raw=False)
    assert typed.id == "req-1"
    assert not typed.raw_output_contents
    assert list(typed.outputs[0].contents.fp32_contents) == [0.25, 0.75]
    assert list(typed.outputs[1].contents.int64_contents) == [1]
    half = InferTensor("h", "FP16", (1, 2), probabilities.astype(np.float16))
    forced = encode_infer_response(InferResponse("m", "1", (response.outputs[0], half)), raw=False)
    assert [len(r) for r in forced.raw_output_contents] == [8, 4]
    assert np.frombuffer(forced.raw_output_contents[1], "<f2").tolist() == [0.25, 0.75]


def test_parameters_round_trip() -> None:
    values = {"flag": True, "count": -3, "big": 2**64 - 1, "ratio": 0.5, "name": "x"}
    message = pb.ModelInferRequest()
    encode_parameters(message.parameters, values)
    assert message.parameters["flag"].WhichOneof("parameter_choice") == "bool_param"
    assert message.parameters["big"].WhichOneof("parameter_choice") == "uint64_param"
    assert decode_parameters(message.parameters) == values


def test_requested_output_classification_is_read() -> None:
    request = pb.ModelInferRequest(model_name="m")
    output = request.outputs.add(name="p")
    output.parameters["classification"].int64_param = 3
    output.parameters["other"].string_param = "kept"
    [requested] = decode_infer_request(request).outputs or ()
    assert (requested.name, requested.classification) == ("p", 3)
    assert requested.parameters == {"other": "kept"}


REFUSED = {
    "int8 value out of range": (
        Tensor(
            name="x",
            datatype="INT8",
            shape=[1],
            contents=pb.InferTensorContents(int_contents=[300]),
        ),
        None,
        "outside INT8's range",
    ),
    "fp16 in typed contents": (
        Tensor(name="x", datatype="FP16", shape=[1]),
        None,
        "raw_input_contents",
    ),
    "bytes raw cut short": (
        Tensor(name="x", datatype="BYTES", shape=[2]),
        [struct.pack("<I", 1) + b"a" + struct.pack("<I", 5) + b"ab"],
        "element 1",
    ),
    "bytes raw with trailing data": (
        Tensor(name="x", datatype="BYTES", shape=[1]),
        [struct.pack("<I", 1) + b"ab"],
        "after 1 elements",
    ),
    "contents and raw together": (
        Tensor(
            name="x",
            datatype="FP32",
            shape=[1],
            contents=pb.InferTensorContents(fp32_contents=[1.0]),
        ),
        [b"\0" * 4],
        "both",
    ),
}


@pytest.mark.parametrize("case", list(REFUSED), ids=list(REFUSED))
def test_malformed_tensors_are_refused_with_a_reason(case: str) -> None:
    tensor, raw, words = REFUSED[case]
    with pytest.raises(InvalidInput, match=words):
        decode_infer_request(request_of(tensor, raw))


def test_classification_must_be_an_integer() -> None:
    request = pb.ModelInferRequest(model_name="m")
    request.outputs.add(name="p").parameters["classification"].string_param = "two"
    with pytest.raises(InvalidInput, match="classification"):
        decode_infer_request(request)
