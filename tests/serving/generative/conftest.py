"""Generative serving fixtures: a registry holding the tiny causal LM (its tokenizer as the
version's `tokenizer.json`, its generation config in the lineage) beside a classifier, and REST
servers over it: one loaded through the registry as `maas serve` does, one whose model steps
can be held (to fill queues and cut clients off at a known step)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from lm_models import HeldModel, TinyLm
from onnx_models import build_classifier
from prometheus_client import CollectorRegistry
from served_lm import LM_NAME, Served

from maas.batching.batcher import Batcher
from maas.batching.policy import BatchPolicy
from maas.generate.model import CausalLm
from maas.generate.scheduler import GenerationLimits, Scheduler
from maas.generate.text import TextGenerator
from maas.generate.tokenizer import TextTokenizer
from maas.metrics.prometheus import ServingMetrics
from maas.registry.store import Registry
from maas.serving.dataplane import DataPlane
from maas.serving.generative import GenerativeOnly
from maas.serving.options import ServingConfig
from maas.serving.repository import LoadedVersion, ModelRepository
from maas.serving.rest.server import RestServer
from maas.serving.server import build_data_plane


@pytest.fixture(scope="session")
def gen_registry(tmp_path_factory: pytest.TempPathFactory, tiny_lm: TinyLm) -> Iterator[Registry]:
    folder = tmp_path_factory.mktemp("gen-registry")
    registry = Registry(f"sqlite:///{folder / 'registry.db'}", folder / "artifacts")
    registry.register(
        LM_NAME,
        tiny_lm.model_bytes,
        signature=tiny_lm.signature,
        lineage={"generation": tiny_lm.config},
        files={"tokenizer.json": tiny_lm.tokenizer_json.encode()},
    )
    classifier = build_classifier()
    registry.register("iris", classifier.model_bytes, signature=classifier.signature)
    yield registry
    registry.close()


async def _serve(data_plane: DataPlane) -> AsyncIterator[Served]:
    server = RestServer(data_plane, host="127.0.0.1", port=0)
    await server.start()
    try:
        yield Served(f"http://127.0.0.1:{server.port}", data_plane)
    finally:
        await server.stop(grace_s=1.0)
        data_plane.close()


@pytest.fixture
async def served(gen_registry: Registry) -> AsyncIterator[Served]:
    """The LM and the classifier, loaded from the registry the way a server loads them."""
    config = ServingConfig(generation=GenerationLimits(max_running=8, max_tokens=100))
    data_plane = build_data_plane(gen_registry, [LM_NAME, "iris"], config, CollectorRegistry())
    async for item in _serve(data_plane):
        yield item


@pytest.fixture
def held_limits() -> GenerationLimits:
    return GenerationLimits(max_running=8, max_waiting=8, max_tokens=100)


@pytest.fixture
async def held_served(
    gen_registry: Registry,
    tiny_lm: TinyLm,
    causal_lm: CausalLm,
    tokenizer: TextTokenizer,
    held_limits: GenerationLimits,
) -> AsyncIterator[tuple[Served, HeldModel]]:
    """The LM served with a model whose steps the test can hold."""
    metrics = ServingMetrics(CollectorRegistry())
    mv = gen_registry.get(LM_NAME)
    held = HeldModel(causal_lm)
    observer = metrics.generation.for_version(LM_NAME, "1")
    scheduler = Scheduler(held, held_limits, observer=observer, name=f"{LM_NAME}:1")
    observer.watch(
        lambda: float(scheduler.running),
        lambda: float(scheduler.waiting),
        lambda: float(scheduler.kv_cache_bytes),
    )
    scheduler.start()
    generator = TextGenerator(tokenizer, scheduler, causal_lm.config)
    policy = BatchPolicy(max_batch_size=1, max_queue_delay_us=0)
    batcher = Batcher([GenerativeOnly(LM_NAME)], policy, name=LM_NAME)
    batcher.start()
    version_metrics = metrics.for_version(LM_NAME, "1")
    loaded = LoadedVersion(mv, policy, batcher, version_metrics, False, generator=generator)
    data_plane = DataPlane(ModelRepository([loaded]), metrics, ServingConfig())
    try:
        async for item in _serve(data_plane):
            yield item, held
    finally:
        held.gate.set()
