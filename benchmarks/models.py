"""The two benchmark models, built with onnx.helper from deterministic random weights.

Both follow the classifier contract of models the trainer exports: input "input" FP32 with a
dynamic batch dimension, outputs "probabilities" FP32 [-1, 10] and "label" INT64 [-1].
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

CLASSES = 10
OPSET = 17


@dataclass(frozen=True)
class BenchModel:
    """A model to benchmark: its name, ONNX bytes and the shape of one input row."""

    name: str
    onnx_bytes: bytes
    row_shape: tuple[int, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(str(i) for i in range(CLASSES))


def mlp(seed: int = 0) -> BenchModel:
    """MLP 784 -> 512 -> 512 -> 10 with ReLU."""
    rng = np.random.default_rng(seed)
    sizes = [784, 512, 512, CLASSES]
    nodes, weights, current = [], [], "input"
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        weights += [_he(rng, f"w{i}", (fan_in, fan_out), fan_in), _zeros(f"b{i}", (fan_out,))]
        nodes.append(helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [f"h{i}"]))
        current = f"h{i}"
        if i < len(sizes) - 2:
            nodes.append(helper.make_node("Relu", [current], [f"r{i}"]))
            current = f"r{i}"
    return BenchModel("mlp", _classifier("mlp", nodes, weights, current, [784]), (784,))


def cnn(seed: int = 0) -> BenchModel:
    """CNN on 1x64x64: conv 32 -> pool -> conv 64 -> pool -> dense 128 -> 10."""
    rng = np.random.default_rng(seed)
    weights = [
        _he(rng, "c1_w", (32, 1, 3, 3), 9),
        _zeros("c1_b", (32,)),
        _he(rng, "c2_w", (64, 32, 3, 3), 32 * 9),
        _zeros("c2_b", (64,)),
        _he(rng, "d1_w", (64 * 16 * 16, 128), 64 * 16 * 16),
        _zeros("d1_b", (128,)),
        _he(rng, "d2_w", (128, CLASSES), 128),
        _zeros("d2_b", (CLASSES,)),
    ]
    pool = {"kernel_shape": [2, 2], "strides": [2, 2]}
    nodes = [
        helper.make_node("Conv", ["input", "c1_w", "c1_b"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["c1r"]),
        helper.make_node("MaxPool", ["c1r"], ["p1"], **pool),
        helper.make_node("Conv", ["p1", "c2_w", "c2_b"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["c2r"]),
        helper.make_node("MaxPool", ["c2r"], ["p2"], **pool),
        helper.make_node("Flatten", ["p2"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "d1_w", "d1_b"], ["d1"]),
        helper.make_node("Relu", ["d1"], ["d1r"]),
        helper.make_node("Gemm", ["d1r", "d2_w", "d2_b"], ["logits"]),
    ]
    return BenchModel("cnn", _classifier("cnn", nodes, weights, "logits", [1, 64, 64]), (1, 64, 64))


def _classifier(
    name: str,
    nodes: list[onnx.NodeProto],
    weights: list[onnx.TensorProto],
    logits: str,
    row_shape: list[int],
) -> bytes:
    nodes = [
        *nodes,
        helper.make_node("Softmax", [logits], ["probabilities"], axis=-1),
        helper.make_node("ArgMax", [logits], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", *row_shape])],
        [
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", CLASSES]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["batch"]),
        ],
        initializer=weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def _he(
    rng: np.random.Generator, name: str, shape: tuple[int, ...], fan_in: int
) -> onnx.TensorProto:
    data = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
    return numpy_helper.from_array(data, name)


def _zeros(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
    return numpy_helper.from_array(np.zeros(shape, dtype=np.float32), name)
