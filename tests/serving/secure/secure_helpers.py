"""Helpers for the secured-server tests: servers behind a guard, keys and requests (the
certificates come from the shared `certificates` helper)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from prometheus_client import CollectorRegistry

from maas.protocol.proto import grpc_service_pb2 as pb
from maas.registry.store import Registry
from maas.security.auth import Authenticator
from maas.security.guard import Guard
from maas.security.keys import KeyStore
from maas.serving.dataplane import DataPlane
from maas.serving.manager import ModelManager
from maas.serving.options import ServingConfig
from maas.serving.protection import Protection
from maas.serving.server import Server, build_serving

KEY_POLL_S = 0.2  # servers reload keys this often in these tests


ROWS = np.array([[0.5, -1.0, 2.0, 0.25], [1.0, 1.0, -1.0, 0.0]], dtype=np.float32)
INFER_BODY = {
    "inputs": [
        {"name": "input", "datatype": "FP32", "shape": [2, 4], "data": ROWS.ravel().tolist()}
    ]
}


@dataclass
class Keys:
    """Tokens of the test keys, by name."""

    tokens: dict[str, str] = field(default_factory=dict)

    def bearer(self, name: str) -> str:
        return f"Bearer {self.tokens[name]}"


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
    serving = build_serving(registry, config, None, CollectorRegistry())
    data_plane, manager = serving.data_plane, serving.manager
    server = Server(data_plane, host="127.0.0.1", http_port=0, grpc_port=0, protection=protection)
    await manager.start()
    await server.start()
    return Served(server, data_plane, manager, registry, protection.scheme)


async def stop_served(served: Served) -> None:
    await served.manager.stop()
    await served.server.stop(1.0)
    served.data_plane.close()


def guard_for(registry: Registry) -> Guard:
    """A guard over `registry`'s keys that reloads them every `KEY_POLL_S`."""
    return Guard(Authenticator(KeyStore(registry), poll_interval_s=KEY_POLL_S))


def grpc_infer_request(model: str) -> pb.ModelInferRequest:
    request = pb.ModelInferRequest(model_name=model)
    tensor = request.inputs.add(name="input", datatype="FP32", shape=list(ROWS.shape))
    tensor.contents.fp32_contents.extend(ROWS.ravel().tolist())
    return request
