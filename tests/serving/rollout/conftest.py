"""Roll-out fixtures: a fresh registry per test and a served data plane that follows it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from rollout_harness import Served, start_served

from maas.registry.store import Registry
from maas.serving.options import ServingConfig


@pytest.fixture
def fresh_registry(tmp_path: Path) -> Iterator[Registry]:
    """An empty registry of its own (these tests move aliases and write routes)."""
    registry = Registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")
    yield registry
    registry.close()


@pytest.fixture
async def serve(
    fresh_registry: Registry,
) -> AsyncIterator[Callable[..., object]]:
    """`await serve(config=..., models=...)`: a REST server whose manager follows the registry."""
    started: list[Served] = []

    async def start(config: ServingConfig | None = None, models: list[str] | None = None) -> Served:
        served = await start_served(fresh_registry, config, models)
        started.append(served)
        return served

    yield start
    for served in started:
        await served.stop()
