"""Serving fixtures: a SQLite registry with tiny classifiers, a data plane and a REST server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest
from onnx_models import Classifier, build_classifier
from prometheus_client import CollectorRegistry

from maas.batching.policy import BatchPolicy
from maas.registry.store import Registry
from maas.serving.dataplane import DataPlane
from maas.serving.options import ServingConfig
from maas.serving.rest.server import RestServer
from maas.serving.server import build_data_plane

FEATURES = 4
CLASSES = 3


@pytest.fixture(scope="session")
def classifier() -> Classifier:
    return build_classifier(FEATURES, CLASSES, seed=0)


@pytest.fixture(scope="session")
def registry(
    tmp_path_factory: pytest.TempPathFactory, classifier: Classifier
) -> Iterator[Registry]:
    """A registry with model "iris" version 1 (the classifier); shared, so never changed."""
    folder = tmp_path_factory.mktemp("registry")
    reg = Registry(f"sqlite:///{folder / 'registry.db'}", folder / "artifacts")
    reg.register(
        "iris",
        classifier.model_bytes,
        signature=classifier.signature,
        labels=classifier.labels,
        metrics={"test_accuracy": 0.97},
        lineage={"run_id": "run-1", "dataset": "iris"},
    )
    yield reg
    reg.close()


@pytest.fixture
def serving_config() -> ServingConfig:
    return ServingConfig(
        default_policy=BatchPolicy(max_batch_size=32, max_queue_delay_us=500),
        max_request_bytes=1024 * 1024,
    )


@pytest.fixture
def metrics_registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def data_plane(
    registry: Registry, serving_config: ServingConfig, metrics_registry: CollectorRegistry
) -> Iterator[DataPlane]:
    dp = build_data_plane(registry, None, serving_config, metrics_registry)
    yield dp
    dp.close()


@pytest.fixture
async def rest_url(data_plane: DataPlane) -> AsyncIterator[str]:
    server = RestServer(data_plane, host="127.0.0.1", port=0)
    await server.start()
    yield f"http://127.0.0.1:{server.port}"
    await server.stop()
