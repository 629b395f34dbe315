"""A server applies the configuration tuned with a version on this hardware profile."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from onnx_models import Classifier

from maas.config import ServeSettings
from maas.registry.store import Registry
from maas.runtime.hardware import hardware_profile
from maas.serving.options import ServingConfig
from maas.serving.rest.server import RestServer
from maas.serving.server import build_data_plane

TUNED = {"max_batch_size": 5, "max_queue_delay_us": 123, "instances": 2, "intra_op_threads": 1}


@pytest.fixture
def tuned_registry(tmp_path: Path, classifier: Classifier) -> Iterator[Registry]:
    """A registry with iris@1 and a configuration tuned for it on this machine."""
    reg = Registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")
    reg.register("iris", classifier.model_bytes, signature=classifier.signature)
    reg.set_serving_config("iris", 1, hardware_profile().key, {**TUNED, "p99_budget_ms": 5.0})
    yield reg
    reg.close()


async def served_config(registry: Registry, config: ServingConfig) -> dict[str, Any]:
    data_plane = build_data_plane(registry, None, config)
    server = RestServer(data_plane, host="127.0.0.1", port=0)
    await server.start()
    try:
        async with httpx.AsyncClient(timeout=30) as http:
            reply = await http.get(f"http://127.0.0.1:{server.port}/v2/models/iris/config")
    finally:
        await server.stop()
        data_plane.close()
    assert reply.status_code == 200, reply.text
    doc: dict[str, Any] = reply.json()
    return doc


def figures(doc: dict[str, Any]) -> tuple[int, int, int]:
    delay = doc["dynamic_batching"]["max_queue_delay_microseconds"]
    return doc["max_batch_size"], delay, doc["instance_group"][0]["count"]


async def test_the_tuned_configuration_is_served(tuned_registry: Registry) -> None:
    doc = await served_config(tuned_registry, ServingConfig())
    assert figures(doc) == (5, 123, 2)


async def test_a_configuration_tuned_on_other_hardware_is_not(
    tuned_registry: Registry, classifier: Classifier
) -> None:
    tuned_registry.register("iris", classifier.model_bytes, signature=classifier.signature)
    tuned_registry.set_serving_config("iris", 2, "Some other CPU/128", TUNED)
    doc = await served_config(tuned_registry, ServingConfig())  # serves iris@2, the newest
    assert doc["version"] == "2"
    assert figures(doc) == (32, 5_000, 1)  # the settings' defaults


async def test_flags_and_the_serve_file_win_over_the_tuned_fields(
    tuned_registry: Registry, tmp_path: Path
) -> None:
    flagged = ServingConfig.from_settings(ServeSettings(max_batch_size=7))
    assert figures(await served_config(tuned_registry, flagged)) == (7, 123, 2)
    serve_file = tmp_path / "serve.yaml"
    serve_file.write_text("models:\n  iris: {instances: 3}\n")
    filed = ServingConfig.from_settings(ServeSettings(config=serve_file))
    assert figures(await served_config(tuned_registry, filed)) == (5, 123, 3)


async def test_an_unusable_stored_value_falls_back_to_the_settings(
    tuned_registry: Registry,
) -> None:
    tuned_registry.set_serving_config(
        "iris", 1, hardware_profile().key, {**TUNED, "max_batch_size": 0}
    )
    doc = await served_config(tuned_registry, ServingConfig())
    assert figures(doc) == (32, 5_000, 1)
