"""`ModelRunner` on a real ONNX model: outputs equal numpy's, errors are typed, close unloads."""

from __future__ import annotations

import numpy as np
import pytest
from onnx_models import build_classifier

from maas.runtime.runner import ModelRunner, RunnerError


def test_infer_returns_every_output_by_name() -> None:
    classifier = build_classifier(5, 4, seed=1)
    runner = ModelRunner(classifier.model_bytes, intra_op_threads=2, name="m:1")
    runner.load()
    x = np.random.default_rng(0).normal(size=(6, 5)).astype(np.float32)
    outputs = runner.infer({"input": x})
    assert sorted(outputs) == ["label", "probabilities"]
    np.testing.assert_allclose(outputs["probabilities"], classifier.expected(x), atol=1e-5)
    assert outputs["label"].tolist() == classifier.expected(x).argmax(axis=1).tolist()


def test_wrong_inputs_raise_runner_error() -> None:
    runner = ModelRunner(build_classifier().model_bytes, name="m:1")
    runner.load()
    with pytest.raises(RunnerError, match="m:1 failed"):
        runner.infer({"input": np.zeros((2, 9), dtype=np.float32)})


def test_close_unloads_and_load_again_works() -> None:
    runner = ModelRunner(build_classifier().model_bytes, name="m:1")
    runner.load()
    assert runner.is_loaded
    runner.close()
    assert not runner.is_loaded
    with pytest.raises(RunnerError, match="not loaded"):
        runner.infer({"input": np.zeros((1, 4), dtype=np.float32)})
    runner.load()
    assert runner.infer({"input": np.zeros((1, 4), dtype=np.float32)})["label"].shape == (1,)


def test_bad_model_bytes_and_thread_counts_are_refused() -> None:
    with pytest.raises(RunnerError, match="cannot load model broken"):
        ModelRunner(b"not an onnx model", name="broken").load()
    with pytest.raises(RunnerError, match="intra_op_threads"):
        ModelRunner(b"", intra_op_threads=0)
