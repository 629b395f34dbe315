"""Unary gRPC calls meet in the batcher: grpcio hands them over one at a time, yet concurrent
calls share batches while a lone caller's calls each run at once."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from onnx_models import Classifier
from prometheus_client import CollectorRegistry

from maas.batching.policy import MAX_DELAY_LIMIT_US, BatchPolicy
from maas.protocol.proto import grpc_service_pb2 as pb
from maas.protocol.proto import grpc_service_pb2_grpc as pb_grpc
from maas.serving.options import ServingConfig

CALLS = 48
MAX_BATCH = 16
LABELS = {"model": "iris", "version": "1"}
Tensor = pb.ModelInferRequest.InferInputTensor


@pytest.fixture
def serving_config() -> ServingConfig:
    # The longest window there is: a batch that waited for company it never got would show.
    return ServingConfig(
        default_policy=BatchPolicy(max_batch_size=MAX_BATCH, max_queue_delay_us=MAX_DELAY_LIMIT_US)
    )


def batches(metrics: CollectorRegistry) -> tuple[float, float, float]:
    """Rows, batches and batches of one row, from the real `maas_batch_size` histogram."""
    rows = metrics.get_sample_value("maas_batch_size_sum", LABELS) or 0.0
    count = metrics.get_sample_value("maas_batch_size_count", LABELS) or 0.0
    single = metrics.get_sample_value("maas_batch_size_bucket", {**LABELS, "le": "1.0"}) or 0.0
    return rows, count, single


async def infer(stub: pb_grpc.GRPCInferenceServiceStub, x: np.ndarray) -> np.ndarray:
    request = pb.ModelInferRequest(
        model_name="iris",
        inputs=[Tensor(name="input", datatype="FP32", shape=list(x.shape))],
        outputs=[pb.ModelInferRequest.InferRequestedOutputTensor(name="probabilities")],
        raw_input_contents=[x.tobytes()],
    )
    response = await stub.ModelInfer(request)
    out = np.frombuffer(response.raw_output_contents[0], dtype=np.float32)
    return out.reshape(tuple(response.outputs[0].shape))


@pytest.mark.slow
async def test_concurrent_unary_calls_share_batches(
    stub: pb_grpc.GRPCInferenceServiceStub,
    classifier: Classifier,
    metrics_registry: CollectorRegistry,
) -> None:
    rng = np.random.default_rng(5)
    inputs = [rng.normal(size=(1, 4)).astype(np.float32) for _ in range(CALLS)]
    for _ in range(2):  # the second wave meets a batcher that has seen a crowd
        before = batches(metrics_registry)
        results = await asyncio.gather(*(infer(stub, x) for x in inputs))
        for x, got in zip(inputs, results, strict=True):
            np.testing.assert_allclose(got, classifier.expected(x), atol=1e-5)
    rows, count, single = (
        after - old for after, old in zip(batches(metrics_registry), before, strict=True)
    )
    assert rows == CALLS
    assert single * 2 < count  # most runs of the model held more than one call
    assert metrics_registry.get_sample_value(
        "maas_batch_size_bucket", {**LABELS, "le": f"{MAX_BATCH}.0"}
    ) == metrics_registry.get_sample_value("maas_batch_size_count", LABELS)  # none above max


async def test_a_lone_callers_calls_each_run_at_once(
    stub: pb_grpc.GRPCInferenceServiceStub,
    classifier: Classifier,
    metrics_registry: CollectorRegistry,
) -> None:
    rng = np.random.default_rng(6)
    for _ in range(5):
        x = rng.normal(size=(2, 4)).astype(np.float32)
        # a call that waited for company would wait the full window of one second
        got = await asyncio.wait_for(infer(stub, x), MAX_DELAY_LIMIT_US / 1e6 / 2)
        np.testing.assert_allclose(got, classifier.expected(x), atol=1e-5)
    assert batches(metrics_registry) == (10, 5, 0)  # five batches of two rows: each call alone
