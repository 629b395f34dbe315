"""End to end: train on bundled digits, export, validate, register; then check from outside."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from sklearn.datasets import load_digits

from maas.config import load_settings
from maas.errors import ValidationFailed
from maas.pipeline import TrainResult, prepare_data, train
from maas.registry.store import Registry
from maas.train.spec import load_spec, parse_spec

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
GATES = {"digits-cnn": 0.97, "digits-mlp": 0.95}


@pytest.fixture(scope="module", params=sorted(GATES))
def trained(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> TrainResult:
    home = tmp_path_factory.mktemp(request.param)
    spec = load_spec(EXAMPLES / f"{request.param}.yaml")
    return train(spec, load_settings(home=home), base_dir=EXAMPLES)


@pytest.mark.slow
def test_quality_gate_and_registration(trained: TrainResult) -> None:
    assert trained.metrics["test_accuracy"] >= GATES[trained.spec.name]
    assert trained.version is not None
    assert trained.version.version == 1
    assert trained.version.metrics["test_accuracy"] == pytest.approx(
        trained.metrics["test_accuracy"]
    )
    assert trained.metrics["parity_max_abs_diff"] <= 1e-4
    lineage = trained.version.lineage
    assert lineage["dataset"]["fingerprint"].startswith("sha256:")
    assert lineage["export"]["opset"] >= 18
    assert lineage["spec"]["name"] == trained.spec.name
    assert list(trained.version.labels) == [str(i) for i in range(10)]
    assert [t.name for t in trained.version.signature.outputs] == ["probabilities", "label"]


@pytest.mark.slow
def test_registered_onnx_reproduces_accuracy_on_raw_rows(trained: TrainResult) -> None:
    """Plain onnxruntime on raw digits rows (no maas preprocessing) gives the recorded accuracy."""
    home = trained.run_dir.parents[1]
    registry = Registry.from_settings(load_settings(home=home))
    try:
        version = registry.get(trained.spec.name, "latest")
        model_bytes = registry.read_artifact(version)
    finally:
        registry.close()
    session = ort.InferenceSession(model_bytes, providers=["CPUExecutionProvider"])
    prep = prepare_data(trained.spec, None)
    probabilities, labels = session.run(None, {"input": prep.splits.test_x.astype(np.float32)})
    accuracy = float(np.mean(labels == prep.splits.test_y))
    assert accuracy == pytest.approx(version.metrics["test_accuracy"], abs=1e-9)
    assert np.allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    digits = load_digits()  # the raw data, straight from scikit-learn
    _, all_labels = session.run(None, {"input": digits.data.astype(np.float32)})
    assert float(np.mean(all_labels == digits.target)) >= 0.97


@pytest.mark.slow
def test_same_spec_twice_gives_the_same_artifact(tmp_path: Path, trained: TrainResult) -> None:
    again = train(trained.spec, load_settings(home=tmp_path), base_dir=EXAMPLES, register=False)
    first = (trained.export_dir / "weights.safetensors").read_bytes()
    assert (again.export_dir / "weights.safetensors").read_bytes() == first


def test_failed_validation_registers_nothing(tmp_path: Path) -> None:
    spec = parse_spec(
        {
            "name": "iris-gate",
            "data": {"source": "iris"},
            "train": {"epochs": 1, "lr": 1e-6},
            "validate": {"min_test_accuracy": 0.999},
        }
    )
    settings = load_settings(home=tmp_path)
    with pytest.raises(ValidationFailed, match=r"accuracy check failed: test accuracy .* below"):
        train(spec, settings)
    registry = Registry.from_settings(settings)
    try:
        assert registry.list_models() == []
    finally:
        registry.close()
