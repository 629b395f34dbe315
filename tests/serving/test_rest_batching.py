"""Batching seen from outside: concurrent requests each get their own rows; full queues say 503."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator

import httpx
import numpy as np
import pytest
from onnx_models import Classifier
from prometheus_client import CollectorRegistry

from maas.batching.batcher import Batcher
from maas.batching.policy import BatchPolicy
from maas.metrics.prometheus import ServingMetrics
from maas.registry.store import Registry
from maas.runtime.runner import ModelRunner, Runner
from maas.serving.dataplane import DataPlane
from maas.serving.options import ServingConfig
from maas.serving.repository import LoadedVersion, ModelRepository
from maas.serving.rest.server import RestServer
from maas.serving.server import build_data_plane

MAX_BATCH = 8


def sample(metrics: CollectorRegistry, name: str, **labels: str) -> float:
    value = metrics.get_sample_value(name, labels)
    return 0.0 if value is None else value


@pytest.fixture
def serving_config() -> ServingConfig:
    return ServingConfig(
        default_policy=BatchPolicy(max_batch_size=MAX_BATCH, max_queue_delay_us=200, instances=2)
    )


@pytest.mark.slow
async def test_concurrent_requests_get_exactly_their_own_rows(
    rest_url: str, classifier: Classifier, metrics_registry: CollectorRegistry
) -> None:
    rng = np.random.default_rng(3)
    inputs = [rng.normal(size=(1 + i % 3, 4)).astype(np.float32) for i in range(300)]
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=rest_url, limits=limits, timeout=60) as http:

        async def one(x: np.ndarray) -> np.ndarray:
            body = {
                "inputs": [
                    {
                        "name": "input",
                        "datatype": "FP32",
                        "shape": list(x.shape),
                        "data": x.ravel().tolist(),
                    }
                ],
                "outputs": [{"name": "probabilities"}],
            }
            reply = await http.post("/v2/models/iris/infer", json=body)
            assert reply.status_code == 200, reply.text
            out = reply.json()["outputs"][0]
            return np.asarray(out["data"], dtype=np.float32).reshape(out["shape"])

        results = await asyncio.gather(*(one(x) for x in inputs))
    for x, got in zip(inputs, results, strict=True):
        np.testing.assert_allclose(got, classifier.expected(x), atol=1e-5)
    labels = {"model": "iris", "version": "1"}
    rows = sum(x.shape[0] for x in inputs)
    batches = sample(metrics_registry, "maas_batch_size_count", **labels)
    assert sample(metrics_registry, "maas_batch_size_sum", **labels) == rows
    assert batches < 300  # some requests shared a batch
    assert sample(metrics_registry, "maas_batch_size_bucket", le=f"{MAX_BATCH}.0", **labels) == (
        batches
    )  # no batch above max_batch_size
    ok = sample(metrics_registry, "maas_requests_total", protocol="rest", code="ok", **labels)
    assert ok == 300


class GatedRunner:
    """A real runner that holds each batch until the test opens the gate."""

    def __init__(self, runner: ModelRunner) -> None:
        self.runner = runner
        self.entered = threading.Event()
        self.gate = threading.Event()

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.entered.set()
        self.gate.wait(30)
        return self.runner.infer(inputs)


class CrashingRunner:
    """A model that crashes on every input (stands in for a broken kernel)."""

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        raise RuntimeError("segfault in kernel 7")


def plane_with_runner(registry: Registry, runner: Runner, policy: BatchPolicy) -> DataPlane:
    """A data plane serving iris:1 through `runner` (the public pieces, assembled by hand)."""
    mv = registry.get("iris")
    metrics = ServingMetrics(CollectorRegistry())
    version_metrics = metrics.for_version("iris", "1")
    batcher = Batcher([runner], policy, observer=version_metrics, name="iris:1")
    batcher.start()
    loaded = LoadedVersion(mv, policy, batcher, version_metrics, is_batchable=True)
    return DataPlane(ModelRepository([loaded]), metrics, ServingConfig())


@pytest.fixture
def gated(registry: Registry) -> Iterator[tuple[DataPlane, GatedRunner]]:
    runner = ModelRunner(registry.read_artifact(registry.get("iris")), name="iris:1")
    runner.load()
    gated_runner = GatedRunner(runner)
    policy = BatchPolicy(max_batch_size=4, max_queue_size=1, max_queue_delay_us=0)
    data_plane = plane_with_runner(registry, gated_runner, policy)
    yield data_plane, gated_runner
    gated_runner.gate.set()
    data_plane.close()


async def test_model_crash_gives_500_with_the_request_id_and_logs_the_cause(
    registry: Registry, caplog: pytest.LogCaptureFixture
) -> None:
    data_plane = plane_with_runner(registry, CrashingRunner(), BatchPolicy())
    server = RestServer(data_plane, port=0)
    await server.start()
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1] * 4}]}
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as http:
            reply = await http.post(
                "/v2/models/iris/infer", json=body, headers={"X-Request-ID": "crash-1"}
            )
            assert (await http.get("/v2/health/live")).status_code == 200
    finally:
        await server.stop()
        data_plane.close()
    assert reply.status_code == 500
    assert reply.headers["x-request-id"] == "crash-1"
    assert reply.json() == {"error": "internal error; request id crash-1"}
    assert "segfault" not in reply.text
    logged = "\n".join(r.getMessage() + str(r.exc_info) for r in caplog.records)
    assert "segfault in kernel 7" in logged


@pytest.fixture
async def gated_url(gated: tuple[DataPlane, GatedRunner]) -> AsyncIterator[str]:
    server = RestServer(gated[0], port=0)
    await server.start()
    yield f"http://127.0.0.1:{server.port}"
    await server.stop()


async def test_full_queue_answers_503_at_once(
    gated: tuple[DataPlane, GatedRunner], gated_url: str
) -> None:
    _, runner = gated
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [1, 4], "data": [1] * 4}]}
    async with httpx.AsyncClient(base_url=gated_url, timeout=30) as http:
        first = asyncio.create_task(http.post("/v2/models/iris/infer", json=body))
        assert await asyncio.to_thread(runner.entered.wait, 10)  # the worker holds request 1
        second = asyncio.create_task(http.post("/v2/models/iris/infer", json=body))
        while gated[0].repository.resolve("iris").batcher.queue_depth < 1:
            await asyncio.sleep(0.01)  # request 2 fills the one queue slot
        third = await http.post("/v2/models/iris/infer", json=body)
        assert third.status_code == 503
        assert "queue is full" in third.json()["error"]
        assert third.headers["retry-after"] == "1"
        runner.gate.set()
        assert (await first).status_code == 200
        assert (await second).status_code == 200
        after = await http.post("/v2/models/iris/infer", json=body)
        assert after.status_code == 200


async def test_metrics_endpoint_exposes_the_serving_families(rest_url: str) -> None:
    body = {"inputs": [{"name": "input", "datatype": "FP32", "shape": [2, 4], "data": [1] * 8}]}
    async with httpx.AsyncClient(base_url=rest_url) as http:
        assert (await http.post("/v2/models/iris/infer", json=body)).status_code == 200
        assert (await http.post("/v2/models/iris/infer", json={})).status_code == 400
        text = (await http.get("/metrics")).text
    assert 'maas_requests_total{code="ok",model="iris",protocol="rest",version="1"} 1.0' in text
    assert (
        'maas_requests_total{code="invalid_argument",model="iris",protocol="rest",version="1"} 1.0'
        in text
    )
    assert 'maas_batch_size_sum{model="iris",version="1"} 2.0' in text
    assert 'maas_queue_depth{model="iris",version="1"} 0.0' in text
    assert "maas_models_loaded 1.0" in text
    for family in ("request", "queue", "compute"):
        assert f'maas_{family}_duration_seconds_count{{model="iris",version="1"}} 1.0' in text


def test_build_data_plane_serves_the_named_ref(registry: Registry) -> None:
    data_plane = build_data_plane(registry, ["iris@1"])
    try:
        assert data_plane.repository.model_names() == ["iris"]
        assert data_plane.repository.version_names("iris") == ("1",)
    finally:
        data_plane.close()
