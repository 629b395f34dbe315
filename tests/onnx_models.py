"""Tiny ONNX models built with `onnx.helper` for tests of the runtime, batcher and servers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from maas.signature import Signature, TensorSpec

OPSET = 17


@dataclass(frozen=True)
class Classifier:
    """A softmax classifier `input [-1, F] -> probabilities [-1, K], label [-1]` and its weights."""

    model_bytes: bytes
    weights: np.ndarray
    bias: np.ndarray
    labels: tuple[str, ...]

    @property
    def signature(self) -> Signature:
        features, classes = self.weights.shape
        return Signature(
            inputs=(TensorSpec("input", "FP32", (-1, features)),),
            outputs=(
                TensorSpec("probabilities", "FP32", (-1, classes)),
                TensorSpec("label", "INT64", (-1,)),
            ),
        )

    def expected(self, x: np.ndarray) -> np.ndarray:
        """The probabilities numpy computes for `x` (float64, for comparisons)."""
        logits = x.astype(np.float64) @ self.weights + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        out: np.ndarray = e / e.sum(axis=1, keepdims=True)
        return out


def build_classifier(features: int = 4, classes: int = 3, seed: int = 0) -> Classifier:
    """A one-layer softmax classifier over `features` inputs with `classes` labelled outputs."""
    rng = np.random.default_rng(seed)
    weights = rng.normal(size=(features, classes)).astype(np.float32)
    bias = rng.normal(size=(classes,)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "W"], ["logits0"]),
            helper.make_node("Add", ["logits0", "B"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
            helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
        ],
        "classifier",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", features])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", classes]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
        ],
        initializer=[numpy_helper.from_array(weights, "W"), numpy_helper.from_array(bias, "B")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    labels = tuple(f"class_{i}" for i in range(classes))
    return Classifier(model.SerializeToString(), weights, bias, labels)


def build_fixed_batch_model(features: int = 2) -> bytes:
    """A model with a fixed batch of 1 (`x [1, F] -> y [1, F]`, y = 2x), which cannot batch."""
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "x"], ["y"])],
        "double",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, features])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, features])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    data: bytes = model.SerializeToString()
    return data
