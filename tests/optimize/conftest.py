"""A tiny digits MLP trained for real into its own registry, shared by the optimize tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from trained_models import MLP_SPEC, train_into

from maas.config import Settings
from maas.registry import Registry
from maas.registry.versions import ModelVersion


@pytest.fixture(scope="session")
def trained_mlp(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, ModelVersion]:
    """Settings of a fresh MAAS_HOME and the registered version of a tiny trained MLP."""
    return train_into(tmp_path_factory.mktemp("optimize-home"), MLP_SPEC)


@pytest.fixture
def registry(trained_mlp: tuple[Settings, ModelVersion]) -> Iterator[Registry]:
    """The registry the tiny MLP lives in."""
    reg = Registry.from_settings(trained_mlp[0])
    yield reg
    reg.close()


@pytest.fixture
def home(trained_mlp: tuple[Settings, ModelVersion]) -> Path:
    """MAAS_HOME of the tiny MLP's registry."""
    return trained_mlp[0].home
