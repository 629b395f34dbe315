"""Pruning: exact structured surgery on zoo models, and pruned versions of a trained MLP."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load as load_safetensors

from maas.config import Settings
from maas.errors import InvalidInput
from maas.optimize.gate import AccuracyGateFailed
from maas.optimize.prune import prune_cnn, prune_mlp, prune_structured, sparsity
from maas.optimize.pruning import PruneRequest, prune_version
from maas.optimize.source import load_source, rebuild_module
from maas.registry import Registry
from maas.registry.versions import ModelVersion
from maas.train.models import CNN, MLP
from maas.train.spec import ModelSpec


def _silence(weight_out: torch.Tensor, weight_in: torch.Tensor, units: list[int]) -> None:
    """Zero every weight into and out of `units`: removing them then changes nothing."""
    with torch.no_grad():
        weight_out[units] = 0.0
        weight_in[:, units] = 0.0


def test_structured_mlp_pruning_removes_exactly_the_dead_units() -> None:
    torch.manual_seed(0)
    spec = ModelSpec(kind="mlp", hidden_sizes=[8, 6])
    model = MLP(5, 3, spec).eval()
    first, second, out = (m for m in model.layers if isinstance(m, torch.nn.Linear))
    _silence(first.weight, second.weight, [0, 2, 5, 7])
    with torch.no_grad():
        first.bias[[0, 2, 5, 7]] = 0.0
    _silence(second.weight, out.weight, [1, 3, 4])
    with torch.no_grad():
        second.bias[[1, 3, 4]] = 0.0
    result = prune_mlp(model, spec, 0.5)
    assert result.spec.hidden_sizes == [4, 3]
    assert result.kept == {"hidden_0": [1, 3, 4, 6], "hidden_1": [0, 2, 5]}
    x = torch.randn(16, 5)
    torch.testing.assert_close(result.model(x), model(x))
    assert sum(p.numel() for p in result.model.parameters()) < sum(
        p.numel() for p in model.parameters()
    )


def test_structured_cnn_pruning_keeps_the_function_of_the_kept_channels() -> None:
    torch.manual_seed(0)
    spec = ModelSpec(kind="cnn", channels=(4, 6), dense_size=8)
    model = CNN((1, 8, 8), 3, spec).eval()
    conv1, conv2 = (m for m in model.features if isinstance(m, torch.nn.Conv2d))
    dense = next(m for m in model.head if isinstance(m, torch.nn.Linear))
    with torch.no_grad():
        conv1.weight[[1, 2]] = 0.0
        conv1.bias[[1, 2]] = 0.0  # ReLU(0) = 0: the channel carries nothing
        conv2.weight[[0, 3, 5]] = 0.0
        conv2.bias[[0, 3, 5]] = 0.0
        dense.weight[[2, 3, 4, 7]] = 0.0
        dense.bias[[2, 3, 4, 7]] = 0.0
    result = prune_cnn(model, spec, 0.5)
    assert result.spec.channels == (2, 3)
    assert result.spec.dense_size == 4
    assert result.kept["conv_1"] == [0, 3]
    assert result.kept["conv_2"] == [1, 2, 4]
    x = torch.randn(5, 64)
    torch.testing.assert_close(result.model(x), model(x))


def test_structured_pruning_refuses_unknown_architectures() -> None:
    with pytest.raises(InvalidInput, match="unstructured"):
        prune_structured(torch.nn.Linear(3, 2), ModelSpec(kind="pkg.mod:build"), 0.5)
    with pytest.raises(InvalidInput, match="between 0 and 1"):
        prune_mlp(MLP(3, 2, ModelSpec()), ModelSpec(), 1.0)


@pytest.mark.slow
def test_structured_pruning_registers_a_smaller_validated_version(
    registry: Registry, trained_mlp: tuple[Settings, ModelVersion]
) -> None:
    parent = trained_mlp[1]
    request = PruneRequest(amount=0.5, kind="structured", finetune_epochs=3)
    outcome = prune_version(registry, parent.name, parent.version, request)
    child = outcome.registered
    assert child is not None
    assert child.lineage["parent_version"] == parent.version
    assert child.lineage["spec"]["model"]["hidden_sizes"] == [24, 12]
    assert child.lineage["optimization"]["before"] == {"hidden_sizes": [48, 24]}
    assert child.size_bytes < parent.size_bytes
    assert child.metrics["parameters"] < parent.metrics["parameters"]
    assert parent.metrics["test_accuracy"] - child.metrics["test_accuracy"] <= 0.02
    # The stored weights and spec rebuild the pruned model, which agrees with the artifact.
    source = load_source(registry, child.name, child.version)
    module = rebuild_module(registry, source)
    with torch.no_grad():
        torch_labels = module(torch.from_numpy(source.test_x))[1].numpy()
    from maas.evaluate.timing import open_session

    onnx_labels = open_session(registry.read_artifact(child)).run(
        ["label"], {"input": source.test_x}
    )[0]
    assert np.mean(torch_labels == onnx_labels) > 0.99


@pytest.mark.slow
def test_unstructured_pruning_zeroes_half_the_weights(
    registry: Registry, trained_mlp: tuple[Settings, ModelVersion]
) -> None:
    parent = trained_mlp[1]
    request = PruneRequest(amount=0.5, kind="unstructured", max_drop_points=100.0)
    outcome = prune_version(registry, parent.name, parent.version, request)
    child = outcome.registered
    assert child is not None
    state = load_safetensors(registry.read_file(child, "weights.safetensors"))
    weights = [v for k, v in state.items() if k.endswith("weight")]
    zeros = sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)
    assert zeros == pytest.approx(0.5, abs=0.01)
    assert child.lineage["optimization"]["sparsity"] == pytest.approx(zeros)
    module = rebuild_module(registry, load_source(registry, child.name, child.version))
    assert sparsity(module) == pytest.approx(zeros)


@pytest.mark.slow
def test_pruning_gate_refusal_registers_nothing(
    registry: Registry, trained_mlp: tuple[Settings, ModelVersion]
) -> None:
    parent = trained_mlp[1]
    before = len(registry.list_versions(parent.name))
    request = PruneRequest(amount=0.9, kind="structured", max_drop_points=-50.0)
    with pytest.raises(AccuracyGateFailed, match="accuracy gate failed"):
        prune_version(registry, parent.name, parent.version, request)
    assert len(registry.list_versions(parent.name)) == before
