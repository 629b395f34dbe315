"""One load path: start-up and pick-up load, warm up and refuse versions by the same rules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry
from rollout_harness import Served, config, lookup_body, register_lookup

from maas.registry.store import Registry
from maas.runtime.runner import RunnerError
from maas.serving.server import build_data_plane, build_serving

Serve = Callable[..., Any]


def register_failing_warm_up(registry: Registry, name: str) -> int:
    """A version that answers no row of zeros: index 0 + 5 is outside its table of 3."""
    return register_lookup(registry, name, table_size=3, offset=5)


def failed_loads(registry: Registry) -> list[str]:
    return [e.target for e in registry.audit_log() if e.action == "load_version"]


async def metadata(served: Served, name: str) -> dict[str, Any]:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{served.url}/v2/models/{name}")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


async def test_a_failing_warm_up_is_refused_at_start_up_and_at_pick_up_alike(
    fresh_registry: Registry, serve: Serve
) -> None:
    register_lookup(fresh_registry, "lookup", table_size=10)
    fresh_registry.set_alias("lookup", "production", 1)
    register_failing_warm_up(fresh_registry, "lookup")  # v2, the newest: planned at start-up
    served: Served = await serve()
    assert served.data_plane.repository.version_names("lookup") == ("1",)
    at_start = (await metadata(served, "lookup"))["parameters"]["load_failures"]
    assert set(at_start) == {"2"}
    assert at_start["2"].startswith("warm-up failed: model lookup:2 failed")

    register_failing_warm_up(fresh_registry, "lookup")  # v3, picked up while serving
    await served.manager.refresh()
    assert served.data_plane.repository.version_names("lookup") == ("1",)
    at_pick_up = (await metadata(served, "lookup"))["parameters"]["load_failures"]
    assert set(at_pick_up) == {"3"}  # v2 is no longer the newest: it left the plan
    assert at_pick_up["3"] == at_start["2"].replace("lookup:2", "lookup:3")
    for version in ("2", "3"):
        assert served.metric("maas_version_load_failures_total", model="lookup", version=version)
    assert failed_loads(fresh_registry) == ["lookup@2", "lookup@3"]
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{served.url}/v2/models/lookup/infer", json=lookup_body(4))
    assert response.status_code == 200
    assert response.json()["model_version"] == "1"


async def test_a_data_plane_without_a_manager_refuses_a_failing_warm_up_too(
    fresh_registry: Registry,
) -> None:
    register_lookup(fresh_registry, "lookup", table_size=10)
    register_failing_warm_up(fresh_registry, "lookup")
    plane = build_data_plane(fresh_registry, ["lookup@1", "lookup@2"])
    try:
        assert plane.repository.version_names("lookup") == ("1",)
        failures = plane.model_metadata("lookup", None).parameters["load_failures"]
        assert set(failures) == {"2"}
        assert failures["2"].startswith("warm-up failed: model lookup:2 failed")
    finally:
        plane.close()


async def test_a_start_up_that_can_load_nothing_raises_the_failure(
    fresh_registry: Registry,
) -> None:
    register_failing_warm_up(fresh_registry, "lookup")
    serving = build_serving(fresh_registry, config(poll_interval_s=0), None, CollectorRegistry())
    try:
        with pytest.raises(RunnerError, match="model lookup:1 failed"):
            await serving.manager.start()
    finally:
        await serving.manager.stop()
        serving.data_plane.close()
