"""How a generative version gets from the registry into a scheduler: the lineage forms the
loader accepts, what it refuses (and says why), and hot pick-up and unloading by the manager."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from lm_models import TinyLm
from prometheus_client import CollectorRegistry

from maas.errors import InvalidInput
from maas.generate.sampling import SamplingParams
from maas.registry.store import Registry
from maas.serving.generative import find_generator
from maas.serving.options import ServingConfig
from maas.serving.server import build_data_plane, build_serving

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    return Registry(f"sqlite:///{tmp_path / 'registry.db'}", tmp_path / "artifacts")


def generator_threads() -> int:
    return sum(t.name.startswith("maas-generate-") for t in threading.enumerate())


async def test_inline_tokenizer_and_top_level_kind_load(
    registry: Registry, tiny_lm: TinyLm
) -> None:
    lineage = {**tiny_lm.config, "tokenizer": tiny_lm.tokenizer_json}
    registry.register("inline", tiny_lm.model_bytes, signature=tiny_lm.signature, lineage=lineage)
    data_plane = build_data_plane(registry, ["inline"], ServingConfig(), CollectorRegistry())
    try:
        _, generator = find_generator(data_plane.repository, "inline")
        stream = generator.start(
            generator.tokenizer.encode("hello"), SamplingParams(4, 0.0), deadline_s=None
        )
        text, reason = await stream.text()
        assert reason == "length"
        assert stream.usage.completion_tokens == 4
        assert text
    finally:
        data_plane.close()
    registry.close()


@pytest.mark.parametrize(
    ("lineage_change", "message"),
    [
        ({}, "has no tokenizer: register it with a 'tokenizer.json' file"),
        ({"layers": 3, "tokenizer": None}, "lacks past_key_values.2.key"),
        ({"heads": "two", "tokenizer": None}, "'heads' must be an integer"),
    ],
)
def test_unusable_generative_versions_are_refused(
    registry: Registry, tiny_lm: TinyLm, lineage_change: dict[str, object], message: str
) -> None:
    config = {**tiny_lm.config, **lineage_change}
    if config.get("tokenizer", "") is None:
        config["tokenizer"] = tiny_lm.tokenizer_json
    registry.register(
        "broken", tiny_lm.model_bytes, signature=tiny_lm.signature, lineage={"generation": config}
    )
    before = generator_threads()
    with pytest.raises(InvalidInput, match=message):
        build_data_plane(registry, ["broken"], ServingConfig(), CollectorRegistry())
    assert generator_threads() == before
    registry.close()


async def test_the_manager_picks_up_and_unloads_a_generative_version(
    registry: Registry, tiny_lm: TinyLm
) -> None:
    register = {
        "signature": tiny_lm.signature,
        "lineage": {"generation": tiny_lm.config},
        "files": {"tokenizer.json": tiny_lm.tokenizer_json.encode()},
    }
    registry.register("lm", tiny_lm.model_bytes, **register)  # type: ignore[arg-type]
    config = ServingConfig(poll_interval_s=0)
    serving = build_serving(registry, config, ["lm"], CollectorRegistry())
    data_plane, manager = serving.data_plane, serving.manager
    try:
        await manager.start()
        before = generator_threads()
        registry.register("lm", tiny_lm.model_bytes, **register)  # type: ignore[arg-type]
        await manager.refresh()
        loaded, _ = find_generator(data_plane.repository, "lm")
        assert loaded.version == "2"  # the new version answers
        for _ in range(200):  # version 1 drains, then its scheduler stops
            if generator_threads() < before + 1:
                break
            await asyncio.sleep(0.01)
        assert generator_threads() == before
        with pytest.raises(Exception, match="no loaded version '1'"):
            find_generator(data_plane.repository, "lm", "1")
    finally:
        await manager.stop()
        data_plane.close()
        registry.close()
