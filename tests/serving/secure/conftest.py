"""Secured-server fixtures: a registry with two models and API keys, and real servers that guard
every endpoint with them (REST and gRPC on 127.0.0.1, free ports)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from onnx_models import Classifier, build_classifier
from prometheus_client import CollectorRegistry
from secure_helpers import CertificateSet, make_certificates

from maas.registry.store import Registry
from maas.security.auth import Authenticator
from maas.security.guard import Guard
from maas.security.keys import KeyStore
from maas.security.ratelimit import RateLimit
from maas.serving.dataplane import DataPlane
from maas.serving.manager import ModelManager
from maas.serving.options import ServingConfig
from maas.serving.protection import Protection
from maas.serving.server import Server, build_data_plane

KEY_POLL_S = 0.2  # servers reload keys this often in these tests


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


@dataclass
class Keys:
    """Tokens of the test keys, by name."""

    tokens: dict[str, str] = field(default_factory=dict)

    def bearer(self, name: str) -> str:
        return f"Bearer {self.tokens[name]}"


@pytest.fixture
def keys(secure_registry: Registry) -> Keys:
    """`digits` (infer:digits), `admin`, `limited` and `other` (infer:*, 50/s each)."""
    store = KeyStore(secure_registry)
    made = Keys()
    made.tokens["digits"] = store.create("digits", ["infer:digits"]).token
    made.tokens["admin"] = store.create("admin", ["admin"]).token
    for name in ("limited", "other"):
        made.tokens[name] = store.create(name, ["infer:*"], RateLimit.parse("50/s")).token
    return made


@dataclass
class Served:
    """A running secured server."""

    server: Server
    data_plane: DataPlane
    manager: ModelManager
    registry: Registry
    scheme: str = "http"

    @property
    def http_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.http_port}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.server.grpc_port}"


async def start_served(
    registry: Registry, protection: Protection, request_timeout_s: float = 10.0
) -> Served:
    """Serve every model of `registry` behind `protection`, with a manager following it."""
    config = ServingConfig(poll_interval_s=0, request_timeout_s=request_timeout_s)
    data_plane = build_data_plane(registry, None, config, CollectorRegistry())
    manager = ModelManager(registry, data_plane)
    data_plane.control = manager
    server = Server(data_plane, host="127.0.0.1", http_port=0, grpc_port=0, protection=protection)
    await server.start()
    await manager.start()
    return Served(server, data_plane, manager, registry, protection.scheme)


async def stop_served(served: Served) -> None:
    await served.manager.stop()
    await served.server.stop(1.0)
    served.data_plane.close()


def guard_for(registry: Registry) -> Guard:
    """A guard over `registry`'s keys that reloads them every `KEY_POLL_S`."""
    return Guard(Authenticator(KeyStore(registry), poll_interval_s=KEY_POLL_S))


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
