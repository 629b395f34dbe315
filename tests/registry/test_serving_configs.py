"""Tuned serving configurations stored per version and hardware profile (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from registry_models import SIGNATURE

from maas.errors import InvalidInput, NotFound
from maas.registry import Registry

CPU_A = "Test CPU A/4"
CPU_B = "Test CPU B/16"


def test_a_config_is_stored_per_version_and_profile(registry: Registry, onnx_model: bytes) -> None:
    registry.register("iris", onnx_model, signature=SIGNATURE)
    registry.register("iris", onnx_model, signature=SIGNATURE)
    stored = registry.set_serving_config(
        "iris", 1, CPU_A, {"max_batch_size": 16, "instances": 2}, actor="alice"
    )
    registry.set_serving_config("iris", 1, CPU_B, {"max_batch_size": 64, "instances": 4})
    got = registry.get_serving_config("iris", 1, CPU_A)
    assert got is not None
    assert got.config == {"max_batch_size": 16, "instances": 2}
    assert got.actor == "alice"
    assert got.created_at == stored.created_at
    other = registry.get_serving_config("iris", 1, CPU_B)
    assert other is not None
    assert other.config["max_batch_size"] == 64
    assert registry.get_serving_config("iris", 2, CPU_A) is None  # version 2 was never tuned
    assert registry.get_serving_config("iris", 1, "Another CPU/4") is None
    actions = [(e.action, e.target) for e in registry.audit_log()]
    assert ("set_serving_config", f"iris@1:{CPU_A}") in actions


def test_setting_again_replaces(registry: Registry, onnx_model: bytes) -> None:
    registry.register("iris", onnx_model, signature=SIGNATURE)
    registry.set_serving_config("iris", 1, CPU_A, {"max_batch_size": 16})
    registry.set_serving_config("iris", 1, CPU_A, {"max_batch_size": 8, "instances": 3})
    got = registry.get_serving_config("iris", 1, CPU_A)
    assert got is not None
    assert got.config == {"max_batch_size": 8, "instances": 3}


def test_deleting_the_version_deletes_its_configs(registry: Registry, onnx_model: bytes) -> None:
    registry.register("iris", onnx_model, signature=SIGNATURE)
    registry.set_serving_config("iris", 1, CPU_A, {"max_batch_size": 16})
    registry.delete_version("iris", 1)
    registry.register("iris", onnx_model, signature=SIGNATURE)  # number 2: 1 is never reused
    with pytest.raises(NotFound):
        registry.get_serving_config("iris", 1, CPU_A)
    assert registry.get_serving_config("iris", 2, CPU_A) is None


def test_unknown_versions_and_bad_input_are_refused(registry: Registry, onnx_model: bytes) -> None:
    registry.register("iris", onnx_model, signature=SIGNATURE)
    with pytest.raises(NotFound):
        registry.set_serving_config("iris", 9, CPU_A, {"max_batch_size": 16})
    with pytest.raises(InvalidInput, match="hardware profile"):
        registry.set_serving_config("iris", 1, "", {"max_batch_size": 16})
    with pytest.raises(InvalidInput, match="JSON"):
        registry.set_serving_config("iris", 1, CPU_A, {"max_batch_size": float("nan")})
