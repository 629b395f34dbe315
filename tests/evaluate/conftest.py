"""A tiny digits MLP trained for real, plus an int8 child, in a registry shared by these tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from trained_models import MLP_SPEC, TrainedHome, train_into

from maas.optimize.quantizing import QuantizeRequest, quantize_version
from maas.registry import Registry


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory: pytest.TempPathFactory) -> TrainedHome:
    """MAAS_HOME with tiny-mlp@1 (fp32) and tiny-mlp@2 (static int8, size objective)."""
    home = tmp_path_factory.mktemp("evaluate-home")
    settings, parent = train_into(home, MLP_SPEC)
    with Registry.from_settings(settings) as registry:
        request = QuantizeRequest("static", "size", max_drop_points=5.0)
        child = quantize_version(registry, parent.name, parent.version, request).registered
    assert child is not None
    return TrainedHome(home, parent, child)


@pytest.fixture
def registry(trained_home: TrainedHome) -> Iterator[Registry]:
    """The registry of `trained_home`."""
    from maas.config import load_settings

    with Registry.from_settings(load_settings(home=trained_home.home)) as reg:
        yield reg
