"""Security fixtures: real registries (SQLite and PostgreSQL), real Redis, real keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from onnx_models import Classifier, build_classifier
from security_helpers import REDIS_URL

from maas.registry import ModelVersion, Registry


@pytest.fixture(scope="session")
def classifier() -> Classifier:
    """A tiny real ONNX classifier, built once per run."""
    return build_classifier(features=4, classes=3, seed=7)


@pytest.fixture
def registry(registry_url: str, artifacts_dir: Path) -> Iterator[Registry]:
    """An open, empty registry (no encryption, no signature check)."""
    with Registry(registry_url, artifacts_dir, source="test") as reg:
        yield reg


@pytest.fixture
def registered(registry: Registry, classifier: Classifier) -> ModelVersion:
    """Version 1 of `digits`, with one extra file."""
    return registry.register(
        "digits",
        classifier.model_bytes,
        signature=classifier.signature,
        labels=classifier.labels,
        files={"labels.txt": b"class_0\nclass_1\nclass_2\n"},
        actor="alice",
    )


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A unique key prefix in the real Redis on 127.0.0.1:6379, cleaned up afterwards."""
    import redis

    prefix = f"maas-test:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=prefix + "*"):
        client.delete(key)
    client.close()
