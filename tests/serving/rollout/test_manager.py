"""Automatic pick-up: new versions and moved aliases are loaded, warmed and swapped in under load;
versions that fail to load never take traffic."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
import numpy as np
import pytest
from rollout_harness import (
    Served,
    artifact_path,
    config,
    expected_probabilities,
    infer_body,
    lookup_body,
    predict,
    register,
    register_lookup,
)

from maas.registry.store import Registry
from maas.serving.options import VersionPolicy

CLIENTS = 8

Serve = Callable[..., Any]


class Load:
    """Eight clients sending requests in a loop; every answer is kept, in order."""

    def __init__(self, url: str, model: str) -> None:
        self.url = url
        self.model = model
        self.answers: list[tuple[int, str]] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Load:
        self._tasks = [asyncio.create_task(self._client()) for _ in range(CLIENTS)]
        await self.wait_answers(CLIENTS * 4)
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def _client(self) -> None:
        async with httpx.AsyncClient(timeout=30) as client:
            while not self._stop.is_set():
                self.answers.append(await predict(client, self.url, self.model))

    async def wait_answers(self, more: int) -> None:
        """Wait for `more` answers (bounded: a stuck server fails the test, never hangs it)."""
        target = len(self.answers) + more
        for _ in range(12_000):
            if len(self.answers) >= target:
                return
            await asyncio.sleep(0.005)
        raise AssertionError(f"only {len(self.answers)} of {target} answers came")


@pytest.mark.slow
async def test_new_version_and_moved_alias_are_served_without_a_failed_request(
    fresh_registry: Registry, serve: Serve
) -> None:
    register(fresh_registry, "digits", seed=1)
    fresh_registry.set_alias("digits", "production", 1)
    served: Served = await serve()
    async with Load(served.url, "digits") as load:
        await asyncio.to_thread(register, fresh_registry, "digits", 2)
        await asyncio.to_thread(fresh_registry.set_alias, "digits", "production", 2)
        await served.wait_polls(2)
        mark = len(load.answers)
        await load.wait_answers(CLIENTS * 10)
    statuses = {status for status, _ in load.answers}
    assert statuses == {200}
    assert load.answers[0][1] == "1"
    assert {version for _, version in load.answers[mark + CLIENTS :]} == {"2"}
    await served.wait_polls(1)
    assert served.data_plane.repository.version_names("digits") == ("2",)
    async with httpx.AsyncClient() as client:
        body = (await client.post(f"{served.url}/v2/models/digits/infer", json=infer_body())).json()
    got = np.array(body["outputs"][0]["data"], dtype=np.float64).reshape(1, -1)
    np.testing.assert_allclose(got, expected_probabilities(2), rtol=1e-5)


@pytest.mark.parametrize("damage", ["corrupt", "missing"])
async def test_a_broken_artifact_is_not_swapped_in_and_the_old_version_keeps_serving(
    fresh_registry: Registry, serve: Serve, tmp_path: Any, damage: str, caplog: Any
) -> None:
    register(fresh_registry, "digits", seed=1)
    fresh_registry.set_alias("digits", "production", 1)
    served: Served = await serve()
    async with Load(served.url, "digits") as load:
        mv = await asyncio.to_thread(register, fresh_registry, "digits", 2)
        path = artifact_path(tmp_path / "artifacts", mv.digest)
        if damage == "corrupt":
            path.write_bytes(path.read_bytes()[:-8] + b"damaged!")
        else:
            path.unlink()
        with caplog.at_level(logging.ERROR, logger="maas.serving.manager"):
            await asyncio.to_thread(fresh_registry.set_alias, "digits", "production", 2)
            await served.wait_polls(2)
        await load.wait_answers(CLIENTS * 4)
    assert {status for status, _ in load.answers} == {200}
    assert {version for _, version in load.answers} == {"1"}
    assert served.metric("maas_version_load_failures_total", model="digits", version="2") >= 1
    assert served.metric("maas_version_load_failed", model="digits", version="2") == 1
    assert any(r.message == "version.load_failed" for r in caplog.records)
    async with httpx.AsyncClient() as client:
        meta = (await client.get(f"{served.url}/v2/models/digits")).json()
    assert "2" in meta["parameters"]["load_failures"]
    reason = meta["parameters"]["load_failures"]["2"]
    assert reason.startswith("load failed: artifact of digits@2")
    assert ("corrupt" if damage == "corrupt" else "missing") in reason
    assert meta["parameters"]["route"]["default"] == "1"


async def test_a_version_that_fails_its_warm_up_is_not_swapped_in(
    fresh_registry: Registry, serve: Serve
) -> None:
    register_lookup(fresh_registry, "lookup", table_size=10)
    fresh_registry.set_alias("lookup", "production", 1)
    served: Served = await serve()
    # Version 2 looks up index x + 5 in a table of 3: the warm-up's zero is out of range.
    register_lookup(fresh_registry, "lookup", table_size=3, offset=5)
    fresh_registry.set_alias("lookup", "production", 2)
    await served.manager.refresh()
    assert served.data_plane.repository.version_names("lookup") == ("1",)
    failures = served.data_plane.repository.failures("lookup")
    assert failures["2"].startswith("warm-up failed")
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{served.url}/v2/models/lookup/infer", json=lookup_body(4))
    assert response.status_code == 200
    assert response.json()["model_version"] == "1"
    assert response.json()["outputs"][0]["data"] == [40.0]


async def test_version_policy_keeps_the_newest_and_every_aliased_version(
    fresh_registry: Registry, serve: Serve
) -> None:
    for seed in (1, 2, 3, 4):
        register(fresh_registry, "digits", seed)
    fresh_registry.set_alias("digits", "production", 1)
    policy = {"digits": VersionPolicy(latest=2)}
    served: Served = await serve(config(version_policies=policy))
    assert served.data_plane.repository.version_names("digits") == ("1", "3", "4")
    register(fresh_registry, "digits", 5)
    await served.manager.refresh()
    assert served.data_plane.repository.version_names("digits") == ("1", "4", "5")


async def test_explicit_versions_and_aliases_can_be_pinned(
    fresh_registry: Registry, serve: Serve
) -> None:
    register(fresh_registry, "digits", seed=1)
    register(fresh_registry, "digits", seed=2)
    fresh_registry.set_alias("digits", "production", 2)
    fresh_registry.set_alias("digits", "old", 1)
    served: Served = await serve()
    async with httpx.AsyncClient() as client:
        for path, version in [("", "2"), ("/versions/1", "1"), ("/versions/old", "1")]:
            url = f"{served.url}/v2/models/digits{path}/infer"
            response = await client.post(url, json=infer_body())
            assert response.status_code == 200
            assert response.json()["model_version"] == version
            assert response.headers["x-model-version"] == version


async def test_a_model_served_by_number_serves_only_that_version(
    fresh_registry: Registry, serve: Serve
) -> None:
    register(fresh_registry, "digits", seed=1)
    register(fresh_registry, "digits", seed=2)
    served: Served = await serve(models=["digits@1"])
    register(fresh_registry, "digits", seed=3)
    await served.manager.refresh()
    assert served.data_plane.repository.version_names("digits") == ("1",)


async def test_a_stopping_server_reports_not_ready_and_still_answers(
    fresh_registry: Registry, serve: Serve
) -> None:
    register(fresh_registry, "digits", seed=1)
    served: Served = await serve()
    served.data_plane.begin_shutdown()
    async with httpx.AsyncClient(base_url=served.url) as client:
        assert (await client.get("/v2/health/ready")).status_code == 503
        response = await client.post("/v2/models/digits/infer", json=infer_body())
    assert response.status_code == 200


async def test_a_model_registered_later_is_served_when_every_model_is(
    fresh_registry: Registry, serve: Serve
) -> None:
    register(fresh_registry, "digits", seed=1)
    everything: Served = await serve()
    only_digits: Served = await serve(models=["digits"])
    register(fresh_registry, "iris", seed=2)
    await everything.manager.refresh()
    await only_digits.manager.refresh()
    assert everything.data_plane.repository.model_names() == ["digits", "iris"]
    assert only_digits.data_plane.repository.model_names() == ["digits"]
