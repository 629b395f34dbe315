"""Occlusion attributions: exact on a linear model, one batched call, and a sanity check."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from trained_models import TrainedHome

from maas.errors import ShapeMismatch
from maas.evaluate.occlusion import occlude, occlusion_attributions
from maas.evaluate.timing import open_session
from maas.optimize.source import load_source
from maas.registry import Registry


def linear_softmax(weight: np.ndarray) -> bytes:
    """probabilities = softmax(input @ weight): a real ONNX model with a dynamic batch."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["input", "W"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "linear",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", weight.shape[0]])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 2])],
        initializer=[numpy_helper.from_array(weight.astype(np.float32), "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def test_features_the_model_ignores_get_zero_attribution() -> None:
    weight = np.zeros((4, 2), dtype=np.float32)
    weight[0] = [2.0, -2.0]  # only feature 0 matters, pushing towards class 0
    session = open_session(linear_softmax(weight))
    row = np.array([1.0, 5.0, -3.0, 2.0], dtype=np.float32)
    attributions = occlusion_attributions(session, row, np.zeros(4, np.float32), target=0)
    p_full = 1 / (1 + np.exp(-4.0))
    assert attributions[0] == pytest.approx(p_full - 0.5, abs=1e-6)
    np.testing.assert_allclose(attributions[1:], 0.0, atol=1e-7)
    # The same feature pushes away from class 1.
    away = occlusion_attributions(session, row, np.zeros(4, np.float32), target=1)
    assert away[0] == pytest.approx(-(p_full - 0.5), abs=1e-6)


def test_all_occluded_variants_go_in_one_call() -> None:
    calls: list[int] = []

    def predict(rows: np.ndarray) -> np.ndarray:
        calls.append(len(rows))
        logits = np.stack([rows.sum(axis=1), np.zeros(len(rows))], axis=1)
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)

    out = occlusion_attributions(predict, np.ones(6), np.zeros(6), window=2)
    assert calls == [4]  # the original row + 3 blocks of 2
    assert out[0] == out[1]
    assert out.shape == (6,)


def test_shape_errors_are_reported() -> None:
    with pytest.raises(ShapeMismatch, match="baseline"):
        occlusion_attributions(lambda r: r, np.ones(3), np.zeros(4))
    with pytest.raises(ShapeMismatch, match="one row"):
        occlusion_attributions(lambda r: r, np.ones((2, 3)), np.zeros(3))


@pytest.mark.slow
def test_occluding_top_features_moves_the_prediction_more_than_random_ones(
    registry: Registry, trained_home: TrainedHome
) -> None:
    parent = trained_home.parent
    source = load_source(registry, parent.name, parent.version)
    session = open_session(source.onnx_bytes)
    baseline = source.scaler.offset
    rng = np.random.default_rng(0)
    k = 8
    top_drops, random_drops = [], []
    for row in source.test_x[:20]:
        probs = session.run(["probabilities"], {"input": row[None]})[0][0]
        cls = int(probs.argmax())
        attributions = occlusion_attributions(session, row, baseline, cls)
        top = np.argsort(-attributions)[:k]
        chosen = rng.choice(row.size, size=k, replace=False)
        for features, drops in ((top, top_drops), (chosen, random_drops)):
            masked = occlude(row, baseline, features)
            p = session.run(["probabilities"], {"input": masked[None]})[0][0][cls]
            drops.append(probs[cls] - p)
    assert np.mean(top_drops) > np.mean(random_drops) + 0.05
