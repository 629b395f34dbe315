"""`maas.serving.response_size`: the estimates are never below what the encoders really write,
and the checks refuse exactly what is over the limit."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from maas.errors import ErrorCode, ResponseTooLarge
from maas.protocol.http import encode_response
from maas.protocol.types import InferResponse, InferTensor, RequestedOutput
from maas.serving.dataplane import build_output
from maas.serving.grpc.codec import answers_raw, encode_infer_response
from maas.serving.response_size import (
    Encoding,
    check_encoded,
    check_payload,
    classification_bytes,
    encoded_bytes,
    response_bytes,
)
from maas.signature import V2_TO_NUMPY


def extremes(datatype: str) -> np.ndarray:
    """The values with the longest text of a datatype, 1000 of them."""
    dtype = np.dtype(V2_TO_NUMPY[datatype])
    if datatype == "BOOL":
        values = np.array([False, True])
    elif dtype.kind in "iu":
        info = np.iinfo(dtype)
        values = np.array([info.min, info.max, info.max // 2 + 1], dtype=dtype)
    else:
        finfo = np.finfo(dtype)
        values = np.array(
            [finfo.min, -finfo.tiny, -finfo.eps, np.nextafter(dtype.type(-1), 0), -1 / 3],
            dtype=dtype,
        )
    return np.resize(values.astype(dtype), (10, 100))


NUMERIC = [name for name in V2_TO_NUMPY if name != "BYTES"]
STRINGS = np.array(
    [b'say "hi"\\', b"\x00\x01\x1f" * 5, b"\xff\xfe not utf-8", "ünïcode".encode(), b""] * 40,
    dtype=object,
).reshape(8, 25)


def response_of(tensor: InferTensor) -> InferResponse:
    return InferResponse("model", "1", (tensor,), id='client "id"\n')


@pytest.mark.parametrize("datatype", NUMERIC)
@pytest.mark.parametrize("encoding", [Encoding.JSON, Encoding.RAW])
def test_rest_estimates_are_upper_bounds(datatype: str, encoding: Encoding) -> None:
    data = extremes(datatype)
    response = response_of(InferTensor("out", datatype, data.shape, data))
    real = len(encode_response(response, {"*": encoding is Encoding.RAW}).body)
    estimate = response_bytes(response, encoding)
    assert real <= estimate <= real * 2.5  # never below, not far above
    check_encoded(response, estimate, encoding)
    with pytest.raises(ResponseTooLarge):
        check_encoded(response, estimate - 1, encoding)


@pytest.mark.parametrize("datatype", NUMERIC)
@pytest.mark.parametrize("raw", [False, True])
def test_grpc_estimates_are_upper_bounds(datatype: str, raw: bool) -> None:
    data = extremes(datatype)
    response = response_of(InferTensor("out", datatype, data.shape, data))
    real = encode_infer_response(response, raw=raw).ByteSize()
    encoding = Encoding.RAW if answers_raw(response, raw=raw) else Encoding.PROTO
    assert real <= response_bytes(response, encoding) <= real * 3  # varints vary in length


@pytest.mark.parametrize("encoding", [Encoding.JSON, Encoding.RAW, Encoding.PROTO])
def test_string_estimates_cover_escapes_and_invalid_utf8(encoding: Encoding) -> None:
    response = response_of(InferTensor("out", "BYTES", STRINGS.shape, STRINGS))
    if encoding is Encoding.PROTO:
        real = encode_infer_response(response, raw=False).ByteSize()
    else:
        real = len(encode_response(response, {"*": encoding is Encoding.RAW}).body)
    assert real <= response_bytes(response, encoding) <= real * 2.5
    assert real > sum(len(item) for item in STRINGS.flat)  # escapes did grow it


def test_class_strings_are_bounded_before_they_are_made() -> None:
    scores = np.random.default_rng(0).random((4, 1000)).astype(np.float32)
    labels = tuple(f"label number {i}" for i in range(1000))
    bound = classification_bytes(scores, 1000, labels)
    made = build_output(RequestedOutput("p", classification=1000), scores, labels)
    assert made.data.shape == (4, 1000)
    assert sum(4 + len(item) for item in made.data.flat) <= bound
    assert classification_bytes(scores, 5, labels) == bound // 200  # k is what counts
    requested = [(RequestedOutput("p", classification=1000), scores)]
    check_payload(requested, labels, bound)
    with pytest.raises(ResponseTooLarge) as refused:
        check_payload(requested, labels, bound - 1)
    assert refused.value.code is ErrorCode.PAYLOAD_TOO_LARGE
    assert f"limit of {bound - 1} bytes (max_response_bytes)" in str(refused.value)


def test_raw_outputs_are_counted_by_their_bytes() -> None:
    scores = np.zeros((8, 1024), dtype=np.float32)
    check_payload([(RequestedOutput("p"), scores)], (), scores.nbytes)
    with pytest.raises(ResponseTooLarge, match="send fewer rows"):
        check_payload([(RequestedOutput("p"), scores)] * 2, (), scores.nbytes * 2 - 1)


def test_json_estimate_of_a_real_answer_matches_orjson_closely() -> None:
    probabilities = np.random.default_rng(1).random((32, 10)).astype(np.float32)
    tensor = InferTensor("probabilities", "FP32", probabilities.shape, probabilities)
    real = len(orjson.dumps(probabilities, option=orjson.OPT_SERIALIZE_NUMPY))
    assert real <= encoded_bytes(tensor, Encoding.JSON) <= real * 2
