"""Secured-server fixtures: a registry with two models and API keys, and real servers that guard
every endpoint with them (REST and gRPC on 127.0.0.1, free ports)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from certificates import CertificateSet, make_certificates
from onnx_models import Classifier, build_classifier
from secure_helpers import (
    Keys,
    Served,
    guard_for,
    start_served,
    stop_served,
)

from maas.registry.store import Registry
from maas.security.keys import KeyStore
from maas.security.ratelimit import RateLimit
from maas.serving.protection import Protection


@pytest.fixture(scope="session")
def digits_model() -> Classifier:
    return build_classifier(features=4, classes=3, seed=11)


@pytest.fixture
def secure_registry(tmp_path: Path, digits_model: Classifier) -> Iterator[Registry]:
    """A registry holding `digits` and `iris`, version 1 each."""
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")
    for name in ("digits", "iris"):
        registry.register(
            name,
            digits_model.model_bytes,
            signature=digits_model.signature,
            labels=digits_model.labels,
        )
    yield registry
    registry.close()


@pytest.fixture
def keys(secure_registry: Registry) -> Keys:
    """`digits` (infer:digits), `admin`, `limited` (infer:*, a bucket of 50 refilled at 5/s, so a
    burst outlasts it however slow the machine) and `other` (infer:*, 50/s)."""
    store = KeyStore(secure_registry)
    made = Keys()
    made.tokens["digits"] = store.create("digits", ["infer:digits"]).token
    made.tokens["admin"] = store.create("admin", ["admin"]).token
    for name, limit in (("limited", "5/s,burst=50"), ("other", "50/s")):
        made.tokens[name] = store.create(name, ["infer:*"], RateLimit.parse(limit)).token
    return made


@pytest.fixture
async def secured(secure_registry: Registry, keys: Keys) -> AsyncIterator[Served]:
    """REST and gRPC servers guarded by the registry's keys."""
    served = await start_served(secure_registry, Protection(guard=guard_for(secure_registry)))
    yield served
    await stop_served(served)


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificateSet:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""
    return make_certificates(tmp_path_factory.mktemp("tls"))
