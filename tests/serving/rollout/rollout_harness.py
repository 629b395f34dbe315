"""A served data plane with its model manager, and the tiny models the roll-out tests register."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
from onnx import TensorProto, helper, numpy_helper
from onnx_models import OPSET, Classifier, build_classifier
from prometheus_client import CollectorRegistry

from maas.batching.policy import BatchPolicy
from maas.registry.store import Registry
from maas.registry.versions import ModelVersion
from maas.serving.dataplane import DataPlane
from maas.serving.manager import ModelManager
from maas.serving.options import ServingConfig
from maas.serving.rest.server import RestServer
from maas.serving.server import build_serving
from maas.signature import Signature, TensorSpec

FEATURES = 4
CLASSES = 3
POLL_S = 0.1  # short, so the tests wait little; they count polls, never time them

ROW = [0.5, -1.0, 2.0, 0.25]


def classifier(seed: int) -> Classifier:
    """A different classifier per seed (so answers tell versions apart)."""
    return build_classifier(FEATURES, CLASSES, seed=seed)


def register(registry: Registry, name: str, seed: int) -> ModelVersion:
    """Register the classifier of `seed` as the next version of `name`."""
    model = classifier(seed)
    return registry.register(
        name, model.model_bytes, signature=model.signature, labels=model.labels
    )


def infer_body(rows: list[list[float]] | None = None) -> dict[str, object]:
    data = rows or [ROW]
    return {
        "inputs": [
            {"name": "input", "datatype": "FP32", "shape": [len(data), FEATURES], "data": data}
        ]
    }


def config(**changes: object) -> ServingConfig:
    base: dict[str, object] = {
        "default_policy": BatchPolicy(max_batch_size=16, max_queue_delay_us=200),
        "poll_interval_s": POLL_S,
        "request_timeout_s": 10.0,
    }
    base.update(changes)
    return ServingConfig(**base)  # type: ignore[arg-type]


@dataclass
class Served:
    """One running server: its data plane, manager, REST server and URL."""

    registry: Registry
    data_plane: DataPlane
    manager: ModelManager
    rest: RestServer
    metrics: CollectorRegistry

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.rest.port}"

    def metric(self, name: str, **labels: str) -> float:
        value = self.metrics.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def polls(self) -> float:
        return self.metric("maas_registry_polls_total", outcome="ok")

    async def wait_polls(self, count: int) -> None:
        """Wait until the manager finished `count` more polls (bounded, generously)."""
        target = self.polls() + count
        for _ in range(2000):
            if self.polls() >= target:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"the manager did not poll {count} times")

    async def stop(self) -> None:
        await self.manager.stop()
        await self.rest.stop()
        self.data_plane.close()


async def start_served(
    registry: Registry, serving_config: ServingConfig | None, models: list[str] | None
) -> Served:
    metrics = CollectorRegistry()
    chosen = serving_config or config()
    serving = build_serving(registry, chosen, models, metrics)
    rest = RestServer(serving.data_plane, "127.0.0.1", 0)
    await serving.manager.start()
    await rest.start()
    return Served(registry, serving.data_plane, serving.manager, rest, metrics)


async def predict(client: httpx.AsyncClient, url: str, model: str) -> tuple[int, str]:
    """One v2 inference; returns (status, the answering version)."""
    response = await client.post(f"{url}/v2/models/{model}/infer", json=infer_body())
    if response.status_code != 200:
        return response.status_code, ""
    return 200, str(response.json()["model_version"])


def expected_probabilities(seed: int) -> np.ndarray:
    return classifier(seed).expected(np.array([ROW], dtype=np.float32))


def artifact_path(root: Path, digest: str) -> Path:
    """Where the registry keeps the artifact with `digest` under its artifacts folder `root`."""
    return root / "sha256" / digest[:2] / digest


def build_lookup_model(table_size: int, offset: int = 0) -> bytes:
    """`x [-1, 1] FP32 -> y [-1, 1] FP32`: y = table[int(x) + offset], table[i] = 10 * i.

    An index outside the table makes onnxruntime fail, so one model can fail on some inputs (or
    on the zeros of a warm-up, with an offset) and answer others.
    """
    table = (np.arange(table_size, dtype=np.float32) * 10).reshape(table_size)
    graph = helper.make_graph(
        [
            helper.make_node("Cast", ["x"], ["xi"], to=TensorProto.INT64),
            helper.make_node("Add", ["xi", "offset"], ["index"]),
            helper.make_node("Gather", ["table", "index"], ["y"], axis=0),
        ],
        "lookup",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
        initializer=[
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(np.array(offset, dtype=np.int64), "offset"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    data: bytes = model.SerializeToString()
    return data


LOOKUP_SIGNATURE = Signature(
    inputs=(TensorSpec("x", "FP32", (-1, 1)),), outputs=(TensorSpec("y", "FP32", (-1, 1)),)
)


def register_lookup(registry: Registry, name: str, table_size: int, offset: int = 0) -> int:
    mv = registry.register(name, build_lookup_model(table_size, offset), signature=LOOKUP_SIGNATURE)
    return mv.version


def lookup_body(value: float) -> dict[str, object]:
    return {"inputs": [{"name": "x", "datatype": "FP32", "shape": [1, 1], "data": [value]}]}
