"""Small models trained for real (digits, a few epochs) into a registry, shared by test modules."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from maas.config import Settings, load_settings
from maas.pipeline import train
from maas.registry.versions import ModelVersion
from maas.train.spec import parse_spec

MLP_SPEC: dict[str, Any] = {
    "name": "tiny-mlp",
    "seed": 3,
    "data": {"source": "digits", "split": {"validation": 0.15, "test": 0.2}},
    "model": {"kind": "mlp", "hidden_sizes": [48, 24]},
    "train": {"epochs": 6, "batch_size": 64, "lr": 0.005},
}

CNN_SPEC: dict[str, Any] = {
    "name": "tiny-cnn",
    "seed": 3,
    "data": {"source": "digits", "split": {"validation": 0.15, "test": 0.2}},
    "model": {"kind": "cnn", "channels": [8, 16], "dense_size": 32},
    "train": {"epochs": 3, "batch_size": 64, "lr": 0.005},
}


def train_into(home: Path, spec: dict[str, Any]) -> tuple[Settings, ModelVersion]:
    """Train, export, validate and register `spec` under MAAS_HOME `home`."""
    settings = load_settings(home=home)
    result = train(parse_spec(spec), settings)
    assert result.version is not None
    return settings, result.version


@dataclass(frozen=True)
class TrainedHome:
    """A MAAS_HOME holding a trained version and an optimized child of it."""

    home: Path
    parent: ModelVersion
    child: ModelVersion
