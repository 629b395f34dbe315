"""Errors over gRPC: every method maps a `MaasError` to its status; anything else is a bug that
the client sees only as INTERNAL with a request id, which the log carries with the traceback."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator

import grpc
import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from maas.batching.batcher import Batcher
from maas.batching.policy import BatchPolicy
from maas.metrics.prometheus import ServingMetrics
from maas.protocol.proto import grpc_service_pb2 as pb
from maas.protocol.proto import grpc_service_pb2_grpc as pb_grpc
from maas.registry.store import Registry
from maas.runtime.runner import ModelRunner
from maas.serving.dataplane import DataPlane
from maas.serving.grpc.server import GrpcServer
from maas.serving.options import ServingConfig
from maas.serving.repository import LoadedVersion, ModelRepository

Tensor = pb.ModelInferRequest.InferInputTensor


class LabelLosingRunner:
    """A real runner whose answers lack the `label` output the model declares (stands in for a
    bug between the model and the response)."""

    def __init__(self, runner: ModelRunner) -> None:
        self.runner = runner

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        outputs = self.runner.infer(inputs)
        return {"probabilities": outputs["probabilities"]}


@pytest.fixture
def buggy_plane(registry: Registry) -> Iterator[DataPlane]:
    version = registry.get("iris")
    runner = ModelRunner(registry.read_artifact(version), name="iris:1")
    runner.load()
    policy = BatchPolicy()
    metrics = ServingMetrics(CollectorRegistry())
    version_metrics = metrics.for_version("iris", "1")
    batcher = Batcher([LabelLosingRunner(runner)], policy, observer=version_metrics)
    batcher.start()
    loaded = LoadedVersion(version, policy, batcher, version_metrics, is_batchable=True)
    plane = DataPlane(ModelRepository([loaded]), metrics, ServingConfig())
    yield plane
    plane.close()


@pytest.fixture
async def buggy_stub(buggy_plane: DataPlane) -> AsyncIterator[pb_grpc.GRPCInferenceServiceStub]:
    server = GrpcServer(buggy_plane, host="127.0.0.1", port=0)
    await server.start()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        yield pb_grpc.GRPCInferenceServiceStub(channel)
    await server.stop(grace_s=1.0)


async def test_a_bug_answers_internal_with_the_request_id_it_logs(
    buggy_stub: pb_grpc.GRPCInferenceServiceStub, caplog: pytest.LogCaptureFixture
) -> None:
    x = np.ones((1, 4), dtype=np.float32)
    request = pb.ModelInferRequest(
        model_name="iris",
        inputs=[Tensor(name="input", datatype="FP32", shape=[1, 4])],
        raw_input_contents=[x.tobytes()],
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await buggy_stub.ModelInfer(request)
    assert caught.value.code() == grpc.StatusCode.INTERNAL
    found = re.fullmatch(r"internal error \(request id ([0-9a-f]{32})\)", caught.value.details())
    assert found is not None, caught.value.details()
    assert "label" not in caught.value.details()  # no traceback or cause reaches the client
    logged = [r for r in caplog.records if r.getMessage() == "grpc.request_failed"]
    assert [r.__dict__["request_id"] for r in logged] == [found.group(1)]
    assert logged[0].exc_info is not None
    assert isinstance(logged[0].exc_info[1], KeyError)
    # the server goes on answering
    assert (await buggy_stub.ServerLive(pb.ServerLiveRequest())).live


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("ModelMetadata", pb.ModelMetadataRequest(name="nope")),
        ("ModelConfig", pb.ModelConfigRequest(name="nope")),
        ("ModelStatistics", pb.ModelStatisticsRequest(name="nope")),
        ("ModelInfer", pb.ModelInferRequest(model_name="nope")),
    ],
)
async def test_each_method_maps_a_maas_error_to_its_status(
    stub: pb_grpc.GRPCInferenceServiceStub, method: str, request_message: object
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await getattr(stub, method)(request_message)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert "nope" in caught.value.details()
