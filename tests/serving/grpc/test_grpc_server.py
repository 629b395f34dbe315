"""GrpcServer end to end: tritonclient and our own stub against a real server and data plane."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import grpc
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.grpc as triton_grpc
import tritonclient.grpc.aio as triton_aio
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from onnx_models import Classifier
from tritonclient.grpc import model_config_pb2

from maas.errors import MaasError
from maas.protocol.proto import grpc_service_pb2 as pb
from maas.protocol.proto import grpc_service_pb2_grpc as pb_grpc
from maas.serving.dataplane import DataPlane
from maas.serving.grpc.server import GrpcServer

FEATURES = 4
Tensor = pb.ModelInferRequest.InferInputTensor


@pytest.fixture(scope="module")
def reference(classifier: Classifier) -> ort.InferenceSession:
    """onnxruntime in-process: what every served answer must equal."""
    return ort.InferenceSession(classifier.model_bytes, providers=["CPUExecutionProvider"])


def rows_of(count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(count, FEATURES)).astype(np.float32)


def triton_input(x: np.ndarray) -> triton_grpc.InferInput:
    tensor = triton_grpc.InferInput("input", list(x.shape), "FP32")
    tensor.set_data_from_numpy(x)
    return tensor


def raw_request(x: np.ndarray, model_name: str = "iris", **fields: object) -> pb.ModelInferRequest:
    return pb.ModelInferRequest(
        model_name=model_name,
        inputs=[Tensor(name="input", datatype="FP32", shape=list(x.shape))],
        raw_input_contents=[x.tobytes()],
        **fields,
    )


async def test_health_rpcs_answer(triton: triton_aio.InferenceServerClient) -> None:
    assert await triton.is_server_live() is True
    assert await triton.is_server_ready() is True
    assert await triton.is_model_ready("iris") is True
    assert await triton.is_model_ready("iris", "1") is True
    assert await triton.is_model_ready("nope") is False


async def test_server_metadata(triton: triton_aio.InferenceServerClient) -> None:
    meta = await triton.get_server_metadata(as_json=True)
    assert meta["name"] == "maas"
    assert {"binary_tensor_data", "model_configuration", "statistics"} <= set(meta["extensions"])


async def test_model_metadata(triton: triton_aio.InferenceServerClient) -> None:
    meta = await triton.get_model_metadata("iris")
    assert meta.name == "iris"
    assert list(meta.versions) == ["1"]
    assert meta.platform == "onnxruntime_onnx"
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.inputs] == [
        ("input", "FP32", [-1, FEATURES])
    ]
    assert [(t.name, t.datatype, list(t.shape)) for t in meta.outputs] == [
        ("probabilities", "FP32", [-1, 3]),
        ("label", "INT64", [-1]),
    ]


async def test_model_metadata_of_unknown_model_is_not_found(
    triton: triton_aio.InferenceServerClient,
) -> None:
    with pytest.raises(triton_grpc.InferenceServerException) as info:
        await triton.get_model_metadata("nope")
    assert info.value.status() == "StatusCode.NOT_FOUND"
    assert "nope" in info.value.message()


async def test_model_config_reads_as_triton_config(
    triton: triton_aio.InferenceServerClient,
) -> None:
    config = (await triton.get_model_config("iris")).config
    assert (config.name, config.platform, config.backend) == (
        "iris",
        "onnxruntime_onnx",
        "onnxruntime",
    )
    assert config.max_batch_size == 32
    assert [(t.name, t.data_type, list(t.dims)) for t in config.input] == [
        ("input", model_config_pb2.TYPE_FP32, [FEATURES])
    ]
    assert [(t.name, t.data_type, list(t.dims)) for t in config.output] == [
        ("probabilities", model_config_pb2.TYPE_FP32, [3]),
        ("label", model_config_pb2.TYPE_INT64, []),
    ]
    assert config.dynamic_batching.max_queue_delay_microseconds == 500
    assert config.dynamic_batching.default_queue_policy.max_queue_size == 1024
    assert [(g.count, g.kind) for g in config.instance_group] == [
        (1, model_config_pb2.ModelInstanceGroup.KIND_CPU)
    ]


async def test_statistics_count_requests(triton: triton_aio.InferenceServerClient) -> None:
    await triton.infer("iris", [triton_input(rows_of(3))])
    await triton.infer("iris", [triton_input(rows_of(2))])
    stats = await triton.get_inference_statistics("iris")
    [model] = stats.model_stats
    assert (model.name, model.version) == ("iris", "1")
    assert model.inference_stats.success.count == 2
    assert model.inference_stats.fail.count == 0
    assert model.inference_count == 5
    assert model.last_inference > 0


@pytest.mark.parametrize("rows", [1, 3, 17])
async def test_infer_raw_contents_equals_onnxruntime(
    triton: triton_aio.InferenceServerClient, reference: ort.InferenceSession, rows: int
) -> None:
    x = rows_of(rows, seed=rows)
    result = await triton.infer("iris", [triton_input(x)], request_id=f"r{rows}")
    want_probabilities, want_labels = reference.run(None, {"input": x})
    np.testing.assert_allclose(result.as_numpy("probabilities"), want_probabilities, atol=1e-5)
    assert result.as_numpy("label").tolist() == want_labels.tolist()
    response = result.get_response()
    assert response.id == f"r{rows}"
    assert (response.model_name, response.model_version) == ("iris", "1")
    assert len(response.raw_output_contents) == 2  # a raw request gets raw outputs


@pytest.mark.parametrize("rows", [1, 3, 17])
async def test_infer_typed_contents_equals_onnxruntime(
    stub: pb_grpc.GRPCInferenceServiceStub, reference: ort.InferenceSession, rows: int
) -> None:
    x = rows_of(rows, seed=100 + rows)
    contents = pb.InferTensorContents(fp32_contents=x.ravel().tolist())
    request = pb.ModelInferRequest(
        model_name="iris",
        inputs=[Tensor(name="input", datatype="FP32", shape=[rows, FEATURES], contents=contents)],
    )
    response = await stub.ModelInfer(request)
    assert not response.raw_output_contents  # a typed request gets typed outputs
    outputs = {o.name: o for o in response.outputs}
    assert list(outputs["probabilities"].shape) == [rows, 3]
    assert outputs["label"].datatype == "INT64"
    probabilities = np.array(outputs["probabilities"].contents.fp32_contents).reshape(rows, 3)
    labels = list(outputs["label"].contents.int64_contents)
    want_probabilities, want_labels = reference.run(None, {"input": x})
    np.testing.assert_allclose(probabilities, want_probabilities, atol=1e-5)
    assert labels == want_labels.tolist()


async def test_requested_outputs_and_classification(
    triton: triton_aio.InferenceServerClient,
    reference: ort.InferenceSession,
    classifier: Classifier,
) -> None:
    x = rows_of(5, seed=7)
    outputs = [triton_grpc.InferRequestedOutput("probabilities", class_count=2)]
    result = await triton.infer("iris", [triton_input(x)], outputs=outputs)
    assert result.as_numpy("label") is None  # only what was asked for
    top2 = result.as_numpy("probabilities")
    assert top2.shape == (5, 2)
    want = np.argsort(-reference.run(None, {"input": x})[0], axis=1, kind="stable")[:, :2]
    parsed = [[item.decode().split(":") for item in row] for row in top2]
    assert [[int(p[1]) for p in row] for row in parsed] == want.tolist()
    assert [[p[2] for p in row] for row in parsed] == [
        [classifier.labels[i] for i in row] for row in want.tolist()
    ]


async def test_concurrent_requests_each_get_their_own_answer(
    triton: triton_aio.InferenceServerClient, reference: ort.InferenceSession
) -> None:
    inputs = [rows_of(1 + i % 4, seed=200 + i) for i in range(32)]
    results = await asyncio.gather(*(triton.infer("iris", [triton_input(x)]) for x in inputs))
    for x, result in zip(inputs, results, strict=True):
        want = reference.run(None, {"input": x})[0]
        np.testing.assert_allclose(result.as_numpy("probabilities"), want, atol=1e-5)


def _good() -> pb.ModelInferRequest:
    return raw_request(rows_of(2, seed=9))


MALFORMED: dict[str, tuple[Callable[[], pb.ModelInferRequest], grpc.StatusCode, str]] = {
    "raw length mismatch": (
        lambda: pb.ModelInferRequest(
            model_name="iris",
            inputs=[Tensor(name="input", datatype="FP32", shape=[1, FEATURES])],
            raw_input_contents=[b"\0" * 15],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "15 bytes",
    ),
    "more raw entries than inputs": (
        lambda: pb.ModelInferRequest(
            model_name="iris",
            inputs=[Tensor(name="input", datatype="FP32", shape=[1, FEATURES])],
            raw_input_contents=[b"\0" * 16, b"\0" * 16],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "raw_input_contents",
    ),
    "missing input": (
        lambda: pb.ModelInferRequest(model_name="iris"),
        grpc.StatusCode.INVALID_ARGUMENT,
        "input",
    ),
    "wrong datatype": (
        lambda: pb.ModelInferRequest(
            model_name="iris",
            inputs=[Tensor(name="input", datatype="INT32", shape=[1, FEATURES])],
            raw_input_contents=[b"\0" * 16],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "INT32",
    ),
    "unknown datatype": (
        lambda: pb.ModelInferRequest(
            model_name="iris",
            inputs=[Tensor(name="input", datatype="FLOAT32", shape=[1, FEATURES])],
            raw_input_contents=[b"\0" * 16],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "FLOAT32",
    ),
    "wrong shape": (
        lambda: raw_request(np.zeros((1, FEATURES + 1), dtype=np.float32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "shape",
    ),
    "negative dimension": (
        lambda: pb.ModelInferRequest(
            model_name="iris",
            inputs=[Tensor(name="input", datatype="FP32", shape=[-1, FEATURES])],
            raw_input_contents=[b"\0" * 16],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "dimensions",
    ),
    "typed contents too short": (
        lambda: pb.ModelInferRequest(
            model_name="iris",
            inputs=[
                Tensor(
                    name="input",
                    datatype="FP32",
                    shape=[1, FEATURES],
                    contents=pb.InferTensorContents(fp32_contents=[1.0, 2.0, 3.0]),
                )
            ],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "fp32_contents holds 3",
    ),
    "values in the wrong contents field": (
        lambda: pb.ModelInferRequest(
            model_name="iris",
            inputs=[
                Tensor(
                    name="input",
                    datatype="FP32",
                    shape=[1, FEATURES],
                    contents=pb.InferTensorContents(int_contents=[1, 2, 3, 4]),
                )
            ],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "fp32_contents holds 0",
    ),
    "batch over max_batch_size": (
        lambda: raw_request(np.zeros((33, FEATURES), dtype=np.float32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "33",
    ),
    "unknown output": (
        lambda: raw_request(
            rows_of(1), outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="nope")]
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "nope",
    ),
    "empty model name": (
        lambda: pb.ModelInferRequest(
            inputs=[Tensor(name="input", datatype="FP32", shape=[1, FEATURES])],
            raw_input_contents=[b"\0" * 16],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "model_name",
    ),
    "zero rows": (
        lambda: raw_request(np.zeros((0, FEATURES), dtype=np.float32)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "row",
    ),
    "input given twice": (
        lambda: pb.ModelInferRequest(
            model_name="iris",
            inputs=[Tensor(name="input", datatype="FP32", shape=[1, FEATURES])] * 2,
            raw_input_contents=[b"\0" * 16] * 2,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "twice",
    ),
    "unknown input": (
        lambda: pb.ModelInferRequest(
            model_name="iris",
            inputs=[
                Tensor(name="input", datatype="FP32", shape=[1, FEATURES]),
                Tensor(name="zzz", datatype="FP32", shape=[1, FEATURES]),
            ],
            raw_input_contents=[b"\0" * 16] * 2,
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "zzz",
    ),
    "huge shape with little data": (
        lambda: pb.ModelInferRequest(
            model_name="iris",
            inputs=[Tensor(name="input", datatype="FP32", shape=[2**40, FEATURES])],
            raw_input_contents=[b"\0" * 16],
        ),
        grpc.StatusCode.INVALID_ARGUMENT,
        "16 bytes",
    ),
    "unknown model": (
        lambda: raw_request(rows_of(1), model_name="nope"),
        grpc.StatusCode.NOT_FOUND,
        "nope",
    ),
    "unknown version": (
        lambda: raw_request(rows_of(1), model_version="9"),
        grpc.StatusCode.NOT_FOUND,
        "9",
    ),
}


@pytest.mark.parametrize("case", list(MALFORMED), ids=list(MALFORMED))
async def test_malformed_request_gets_its_status_and_the_server_goes_on(
    stub: pb_grpc.GRPCInferenceServiceStub, reference: ort.InferenceSession, case: str
) -> None:
    build, code, words = MALFORMED[case]
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.ModelInfer(build())
    assert info.value.code() == code
    assert words in (info.value.details() or "")
    response = await stub.ModelInfer(_good())
    probabilities = np.frombuffer(response.raw_output_contents[0], dtype="<f4").reshape(2, 3)
    want = reference.run(None, {"input": rows_of(2, seed=9)})[0]
    np.testing.assert_allclose(probabilities, want, atol=1e-5)


async def test_message_over_the_size_limit_is_refused(
    data_plane: DataPlane, reference: ort.InferenceSession
) -> None:
    server = GrpcServer(data_plane, port=0, max_message_bytes=1024)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.GRPCInferenceServiceStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.ModelInfer(raw_request(rows_of(100)))  # 400 floats, 1600 bytes
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            response = await stub.ModelInfer(_good())
            assert list(response.outputs[0].shape) == [2, 3]
    finally:
        await server.stop(grace_s=1.0)


async def test_stream_answers_each_request_and_survives_a_failed_one(
    stub: pb_grpc.GRPCInferenceServiceStub,
) -> None:
    requests = [
        raw_request(rows_of(2), id="a"),
        raw_request(rows_of(1), model_name="nope", id="b"),
        raw_request(rows_of(3), id="c"),
    ]
    responses = {r.infer_response.id: r async for r in stub.ModelStreamInfer(iter(requests))}
    assert sorted(responses) == ["a", "b", "c"]
    assert "nope" in responses["b"].error_message
    assert not responses["a"].error_message
    assert not responses["c"].error_message
    assert list(responses["a"].infer_response.outputs[0].shape) == [2, 3]
    assert list(responses["c"].infer_response.outputs[0].shape) == [3, 3]


async def test_stream_of_many_requests_matches_onnxruntime(
    stub: pb_grpc.GRPCInferenceServiceStub, reference: ort.InferenceSession
) -> None:
    inputs = {f"r{i}": rows_of(1 + i % 3, seed=300 + i) for i in range(40)}
    requests = [raw_request(x, id=request_id) for request_id, x in inputs.items()]
    answered = 0
    async for response in stub.ModelStreamInfer(iter(requests)):
        answer = response.infer_response
        x = inputs[answer.id]
        got = np.frombuffer(answer.raw_output_contents[0], dtype="<f4").reshape(len(x), 3)
        np.testing.assert_allclose(got, reference.run(None, {"input": x})[0], atol=1e-5)
        answered += 1
    assert answered == len(inputs)


async def test_repository_index_lists_loaded_versions(
    triton: triton_aio.InferenceServerClient,
) -> None:
    index = await triton.get_model_repository_index()
    assert [(m.name, m.version, m.state) for m in index.models] == [("iris", "1", "READY")]


@pytest.mark.parametrize("method", ["RepositoryModelLoad", "RepositoryModelUnload"])
async def test_repository_load_and_unload_are_unimplemented(
    stub: pb_grpc.GRPCInferenceServiceStub, method: str
) -> None:
    request = getattr(pb, f"{method}Request")(model_name="iris")
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await getattr(stub, method)(request)
    assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert method in (info.value.details() or "")


async def test_health_service_follows_the_data_plane(
    channel: grpc.aio.Channel, data_plane: DataPlane
) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "inference.GRPCInferenceService"):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await health.Check(health_pb2.HealthCheckRequest(service="nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    watch = health.Watch(health_pb2.HealthCheckRequest(service="inference.GRPCInferenceService"))
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.SERVING
    data_plane.close()  # the server stops being ready
    assert (await watch.read()).status == health_pb2.HealthCheckResponse.NOT_SERVING
    watch.cancel()


async def test_reflection_lists_and_describes_the_services(channel: grpc.aio.Channel) -> None:
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(
            file_containing_symbol="inference.GRPCInferenceService"
        ),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="grpc.health.v1.Health"),
    ]
    listing, inference, health = [r async for r in reflection.ServerReflectionInfo(iter(requests))]
    names = {s.name for s in listing.list_services_response.service}
    assert {"inference.GRPCInferenceService", "grpc.health.v1.Health"} <= names
    described = descriptor_pb2.FileDescriptorProto.FromString(
        inference.file_descriptor_response.file_descriptor_proto[0]
    )
    assert described.package == "inference"
    methods = {m.name for s in described.service for m in s.method}
    assert {"ModelInfer", "ModelConfig", "ModelStatistics", "ServerLive"} <= methods
    assert health.file_descriptor_response.file_descriptor_proto  # found, not an error


async def test_port_in_use_is_refused(grpc_server: GrpcServer, data_plane: DataPlane) -> None:
    second = GrpcServer(data_plane, port=grpc_server.port)
    with pytest.raises(MaasError, match=str(grpc_server.port)):
        await second.start()


def test_port_is_unknown_before_start(data_plane: DataPlane) -> None:
    with pytest.raises(MaasError, match="not started"):
        _ = GrpcServer(data_plane, port=0).port
