"""Registry fixtures: real SQLite and PostgreSQL databases, and tiny real ONNX models."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from registry_models import linear_softmax_onnx

from maas.registry import Registry


@pytest.fixture(scope="session")
def onnx_model() -> bytes:
    """A tiny real classifier in ONNX, built once per test run."""
    return linear_softmax_onnx()


@pytest.fixture
def registry(registry_url: str, artifacts_dir: Path) -> Iterator[Registry]:
    """An open, empty Registry on SQLite or PostgreSQL."""
    reg = Registry(registry_url, artifacts_dir)
    yield reg
    reg.close()
