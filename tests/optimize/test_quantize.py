"""int8 quantization of a really trained MLP: candidates, the size objective, partial int8, gate."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from maas.config import Settings
from maas.errors import InvalidInput
from maas.evaluate.timing import open_session
from maas.export.onnx import export_onnx
from maas.optimize import quantize as q
from maas.optimize.gate import AccuracyGateFailed
from maas.optimize.quantizing import QuantizeRequest, quantize_version
from maas.optimize.source import load_source, rebuild_module, weights_bytes
from maas.registry import Registry
from maas.registry.versions import ModelVersion

pytestmark = pytest.mark.slow


def _accuracy(model: bytes, x: np.ndarray, y: np.ndarray) -> float:
    probabilities = open_session(model).run(["probabilities"], {"input": x})[0]
    return float(np.mean(probabilities.argmax(-1) == y))


def test_static_int8_with_size_objective_is_registered_with_its_parent(
    registry: Registry, trained_mlp: tuple[Settings, ModelVersion]
) -> None:
    parent = trained_mlp[1]
    before = len(registry.list_versions(parent.name))
    outcome = quantize_version(
        registry, parent.name, parent.version, QuantizeRequest("static", "size", 1.0)
    )
    child = outcome.registered
    assert child is not None
    assert len(registry.list_versions(parent.name)) == before + 1
    assert child.lineage["parent_version"] == parent.version
    assert child.lineage["precision"] == "int8"
    assert child.lineage["optimization"]["objective"] == "size"
    assert child.size_bytes * 2.5 <= parent.size_bytes  # tiny model: fixed overhead weighs more
    assert child.metrics["size_bytes"] == child.size_bytes
    for key in ("latency_ms_b1", "throughput_b32", "parameters", "parent_test_accuracy"):
        assert child.metrics[key] > 0
    # The recorded accuracy is what the registered artifact really scores.
    source = load_source(registry, parent.name, parent.version)
    artifact = registry.read_artifact(child)
    measured = _accuracy(artifact, source.test_x, source.splits.test_y)
    assert child.metrics["test_accuracy"] == pytest.approx(measured)
    assert abs(measured - parent.metrics["test_accuracy"]) <= 0.01
    assert "wins on size" in outcome.reason
    ops = {n.op_type for n in onnx.load_from_string(artifact).graph.node}
    assert "DequantizeLinear" in ops
    assert "weights.safetensors" in child.files
    # An int8 version is not quantized (or pruned) again: the message points at its parent.
    with pytest.raises(InvalidInput, match=f"already int8; quantize {parent.ref} instead"):
        quantize_version(registry, child.name, child.version, QuantizeRequest("static"))


def test_latency_objective_registers_only_a_faster_variant(
    registry: Registry, trained_mlp: tuple[Settings, ModelVersion]
) -> None:
    parent = trained_mlp[1]
    before = len(registry.list_versions(parent.name))
    request = QuantizeRequest("static", "latency", max_drop_points=3.0)
    outcome = quantize_version(registry, parent.name, parent.version, request)
    after = len(registry.list_versions(parent.name))
    assert [c["variant"] for c in outcome.candidates] == ["int8", "int8-compact"]
    if outcome.registered is None:
        assert after == before
        assert outcome.reason.startswith("keep fp32")
    else:
        assert after == before + 1
        assert outcome.registered.metrics["speedup_vs_parent"] >= 1.05
        assert "wins on latency" in outcome.reason


def test_dynamic_int8_is_one_candidate_with_int8_weights(
    registry: Registry, trained_mlp: tuple[Settings, ModelVersion]
) -> None:
    parent = trained_mlp[1]
    request = QuantizeRequest("dynamic", "size", max_drop_points=5.0)
    outcome = quantize_version(registry, parent.name, parent.version, request)
    [candidate] = outcome.candidates
    assert candidate["variant"] == "int8-dynamic"
    assert outcome.registered is not None
    ops = {
        n.op_type
        for n in onnx.load_from_string(registry.read_artifact(outcome.registered)).graph.node
    }
    assert ops & {"MatMulInteger", "DynamicQuantizeLinear"}


def test_unmeetable_gate_refuses_with_both_accuracies(
    registry: Registry, trained_mlp: tuple[Settings, ModelVersion]
) -> None:
    parent = trained_mlp[1]
    before = len(registry.list_versions(parent.name))
    request = QuantizeRequest("static", "size", max_drop_points=-50.0)  # must gain 50 points
    with pytest.raises(AccuracyGateFailed) as info:
        quantize_version(registry, parent.name, parent.version, request)
    message = str(info.value)
    assert f"{parent.metrics['test_accuracy'] * 100:.2f}%" in message
    assert "nothing registered" in message
    assert len(registry.list_versions(parent.name)) == before


def test_layers_are_ranked_and_excluded_layers_stay_fp32(
    registry: Registry, trained_mlp: tuple[Settings, ModelVersion]
) -> None:
    parent = trained_mlp[1]
    source = load_source(registry, parent.name, parent.version)
    prepared = q.prepare_graph(source.onnx_bytes)
    layers = q.quantizable_nodes(prepared)
    assert len(layers) == 3  # three Gemm layers: 64 -> 48 -> 24 -> 10
    cal = q.calibration_rows(source.splits.train_x, 64)
    full = q.quantize_static_int8(prepared, cal, q.StaticOptions())
    assert q.int8_fraction(full) == pytest.approx(1.0)
    ranked = q.rank_sensitive_layers(prepared, full, source.splits.validation_x)
    assert sorted(e.node for e in ranked) == sorted(layers)
    scores = [e.score_db for e in ranked]
    assert scores == sorted(scores)
    assert all(np.isfinite(e.weight_sqnr_db) and e.weight_sqnr_db > 10 for e in ranked)
    partial = q.quantize_static_int8(prepared, cal, q.StaticOptions(), exclude=[ranked[0].node])
    assert q.int8_fraction(partial) == pytest.approx(2 / 3)
    graph = onnx.load_from_string(partial).graph
    fp32_weights = {t.name for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    [kept] = [n for n in graph.node if n.name == ranked[0].node]
    assert kept.input[1] in fp32_weights


def test_partial_int8_keeps_the_damaged_layers_in_fp32(
    registry: Registry, trained_mlp: tuple[Settings, ModelVersion]
) -> None:
    """A few hidden units scaled up 300x (and their outgoing weights down): same function, but
    their range swamps the per-tensor int8 scale of that activation. Full int8 fails the gate;
    QDQ debugging points at the two layers around that activation, which stay fp32."""
    parent = trained_mlp[1]
    source = load_source(registry, parent.name, parent.version)
    module = rebuild_module(registry, source)
    first, second, _ = (m for m in module.core.layers if isinstance(m, torch.nn.Linear))
    with torch.no_grad():
        for unit in range(3):
            first.weight[unit] *= 300.0
            first.bias[unit] *= 300.0
            second.weight[:, unit] /= 300.0
    onnx_bytes, _ = export_onnx(module, torch.from_numpy(source.test_x[:2]))
    skewed = registry.register(
        parent.name,
        onnx_bytes,
        signature=parent.signature,
        labels=parent.labels,
        metrics=parent.metrics,
        lineage=parent.lineage,
        files={"weights.safetensors": weights_bytes(module)},
    )
    outcome = quantize_version(
        registry, parent.name, skewed.version, QuantizeRequest("static", "size", 0.5)
    )
    by_variant = {c["variant"]: c for c in outcome.candidates}
    assert not by_variant["int8"]["gate"]["passed"]
    assert by_variant["int8-partial"]["gate"]["passed"]
    child = outcome.registered
    assert child is not None
    assert child.lineage["precision"] == "int8-partial"
    excluded = child.lineage["optimization"]["excluded_layers"]
    layers = q.quantizable_nodes(q.prepare_graph(onnx_bytes))
    assert excluded == layers[:2]  # the layers writing and reading the swamped activation
    assert outcome.reason.startswith("int8-partial wins on size")
    assert 0 < q.int8_fraction(registry.read_artifact(child)) < 1


@pytest.mark.parametrize("method", ["entropy", "percentile"])
def test_histogram_calibration_methods_keep_accuracy(
    registry: Registry, trained_mlp: tuple[Settings, ModelVersion], method: str
) -> None:
    source = load_source(registry, trained_mlp[1].name, trained_mlp[1].version)
    prepared = q.prepare_graph(source.onnx_bytes)
    cal = q.calibration_rows(source.splits.train_x, 128, seed=1)
    model = q.quantize_static_int8(prepared, cal, q.StaticOptions(method=method))  # type: ignore[arg-type]
    parent_acc = _accuracy(source.onnx_bytes, source.test_x, source.splits.test_y)
    assert _accuracy(model, source.test_x, source.splits.test_y) >= parent_acc - 0.02


def test_calibration_rows_are_a_reproducible_subset() -> None:
    rows = np.arange(100, dtype=np.float32).reshape(50, 2)
    first = q.calibration_rows(rows, 10, seed=4)
    assert first.shape == (10, 2)
    np.testing.assert_array_equal(first, q.calibration_rows(rows, 10, seed=4))
    assert set(first[:, 0].tolist()) <= set(rows[:, 0].tolist())
    assert q.calibration_rows(rows, 500).shape == (50, 2)
