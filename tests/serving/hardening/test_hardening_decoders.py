"""Fuzz the tensor decoders (hypothesis): any bytes or JSON must decode to a request or fail with a
MaasError that maps to a 4xx; never another exception. Decoded requests then go through the
signature checks, which must hold to the same rule."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from google.protobuf.message import DecodeError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maas.errors import ErrorCode, InvalidInput, MaasError, ShapeMismatch
from maas.protocol.http import decode_request
from maas.protocol.proto import grpc_service_pb2 as pb
from maas.protocol.types import InferRequest
from maas.serving.grpc.codec import decode_infer_request
from maas.serving.rest.handlers import HTTP_STATUS
from maas.serving.validation import check_inputs
from maas.signature import Signature, TensorSpec

LONG_RUN = os.environ.get("MAAS_FUZZ_EXAMPLES")
EXAMPLES = int(LONG_RUN or "10") * 20
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=LONG_RUN is None,  # the bounded run repeats itself; a long run explores
    database=None,
)
SIGNATURE = Signature(
    inputs=(TensorSpec("input", "FP32", (-1, 4)), TensorSpec("mask", "BOOL", (-1, 4))),
    outputs=(TensorSpec("label", "INT64", (-1,)),),
)
DYNAMIC_SIGNATURE = Signature(  # every dimension free: any shape gets through to the reshape
    inputs=(TensorSpec("input", "FP32", (-1, -1, -1)),),
    outputs=(TensorSpec("label", "INT64", (-1,)),),
)
HUGE_EMPTY_SHAPE = [0, 2**62, 2**62]  # no elements, yet too big for numpy to shape
DATATYPES = ["BOOL", "UINT8", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES", "fp32", "X"]

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6), st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=30,
)
dims = st.one_of(st.integers(min_value=-3, max_value=9), st.integers(), st.just(2**62))
tensor_data = st.recursive(
    st.one_of(st.floats(), st.integers(-(2**65), 2**65), st.booleans(), st.text(max_size=3)),
    lambda inner: st.lists(inner, max_size=8),
    max_leaves=40,
)
parameters = st.one_of(
    st.none(),
    json_values,
    st.fixed_dictionaries(
        {},
        optional={
            "binary_data_size": st.one_of(st.integers(-4, 64), json_scalars),
            "binary_data": json_scalars,
            "classification": st.one_of(st.integers(-2, 5), json_scalars),
            "binary_data_output": json_scalars,
            "timeout": json_scalars,
        },
    ),
)
tensors = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["input", "mask", "other"]), json_scalars)},
    optional={
        "datatype": st.one_of(st.sampled_from(DATATYPES), json_scalars),
        "shape": st.one_of(st.lists(dims, max_size=4), json_values),
        "data": st.one_of(tensor_data, json_values),
        "parameters": parameters,
    },
)
documents = st.fixed_dictionaries(
    {"inputs": st.one_of(st.lists(tensors, max_size=3), json_values)},
    optional={
        "id": json_scalars,
        "parameters": parameters,
        "outputs": st.one_of(
            st.lists(st.fixed_dictionaries({"name": st.text(max_size=6), "parameters": parameters}))
        ),
    },
)


def assert_client_error(err: MaasError) -> None:
    status = HTTP_STATUS[err.code]
    assert 400 <= status < 500, (err.code, str(err))


def check_decoded(request: InferRequest) -> None:
    for signature in (SIGNATURE, DYNAMIC_SIGNATURE):
        try:
            check_inputs(request, signature, label="fuzz:1", max_batch_size=64, is_batchable=True)
        except MaasError as err:
            assert_client_error(err)


def decode_http(body: bytes, header_length: int | None) -> None:
    try:
        request = decode_request(body, header_length, "fuzz", None)
    except MaasError as err:
        assert_client_error(err)
        return
    check_decoded(request)


@FUZZ
@given(body=st.binary(max_size=256), header_length=st.one_of(st.none(), st.integers(-5, 300)))
def test_any_bytes_decode_or_fail_as_a_client_error(body: bytes, header_length: int | None) -> None:
    decode_http(body, header_length)


@FUZZ
@given(doc=json_values)
def test_any_json_decodes_or_fails_as_a_client_error(doc: Any) -> None:
    decode_http(json.dumps(doc).encode(), None)


@FUZZ
@given(doc=documents, binary=st.binary(max_size=64), use_binary=st.booleans())
def test_v2_shaped_documents_decode_or_fail_as_a_client_error(
    doc: dict[str, Any], binary: bytes, use_binary: bool
) -> None:
    header = json.dumps(doc).encode()  # big ints, NaN and Infinity as a careless client sends
    if use_binary:
        decode_http(header + binary, len(header))
    else:
        decode_http(header, None)


@FUZZ
@given(body=st.binary(max_size=256))
def test_any_grpc_message_decodes_or_fails_as_a_client_error(body: bytes) -> None:
    try:
        message = pb.ModelInferRequest.FromString(body)
    except DecodeError:
        return  # grpc refuses such bytes before our code sees them
    decode_grpc(message)


grpc_tensors = st.builds(
    lambda name, datatype, shape, floats, raw: (name, datatype, shape, floats, raw),
    st.sampled_from(["input", "mask", ""]),
    st.sampled_from(DATATYPES),
    st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=4),
    st.lists(st.floats(width=32), max_size=12),
    st.one_of(st.none(), st.binary(max_size=64)),
)


@FUZZ
@given(items=st.lists(grpc_tensors, max_size=3), model=st.sampled_from(["fuzz", ""]))
def test_structured_grpc_requests_decode_or_fail_as_a_client_error(
    items: list[tuple[str, str, list[int], list[float], bytes | None]], model: str
) -> None:
    message = pb.ModelInferRequest(model_name=model)
    for name, datatype, shape, floats, raw in items:
        tensor = message.inputs.add(name=name, datatype=datatype, shape=shape)
        tensor.contents.fp32_contents.extend(floats)
        if raw is not None:
            message.raw_input_contents.append(raw)
    decode_grpc(message)


def decode_grpc(message: pb.ModelInferRequest) -> None:
    try:
        request = decode_infer_request(message)
    except MaasError as err:
        assert_client_error(err)
        return
    check_decoded(request)


def test_the_fuzz_rule_catches_a_server_error() -> None:
    """The rule above fails on a 5xx code: it is not vacuous."""
    err = MaasError("boom")
    assert err.code is ErrorCode.INTERNAL
    try:
        assert_client_error(err)
    except AssertionError:
        return
    raise AssertionError("a 500 passed the client-error rule")


def test_an_empty_tensor_of_huge_shape_is_a_client_error() -> None:
    """Found by the long fuzz run: numpy refused to shape it and the request got a 500."""
    message = pb.ModelInferRequest(model_name="fuzz")
    message.inputs.add(name="input", datatype="FP32", shape=HUGE_EMPTY_SHAPE)
    with pytest.raises(InvalidInput, match="too large"):
        decode_infer_request(message)
    doc = {"inputs": [{"name": "input", "datatype": "FP32", "shape": HUGE_EMPTY_SHAPE, "data": []}]}
    request = decode_request(json.dumps(doc).encode(), None, "fuzz", None)
    with pytest.raises(ShapeMismatch, match="too large"):
        check_inputs(
            request, DYNAMIC_SIGNATURE, label="fuzz:1", max_batch_size=8, is_batchable=True
        )
    assert HTTP_STATUS[ShapeMismatch.code] == 400
