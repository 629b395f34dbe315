"""Pruning PyTorch models: unstructured magnitude pruning, and structured removal of units/channels.

Unstructured pruning zeroes the smallest weights (the graph keeps its shapes, so the ONNX file and
its speed stay the same). Structured pruning removes whole hidden units of an MLP, or channels and
dense units of a CNN, ranked by the norms of the weights into and out of each unit, and builds a
genuinely smaller model of the same kind: its new sizes go into the spec it is stored with.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from maas.errors import InvalidInput
from maas.train.models import CNN, MLP
from maas.train.spec import ModelSpec

log = logging.getLogger(__name__)

PRUNABLE = (nn.Linear, nn.Conv2d)


@dataclass(frozen=True)
class StructuredResult:
    """A structurally pruned model, the spec that rebuilds it, and what was kept."""

    model: nn.Module
    spec: ModelSpec
    kept: dict[str, list[int]]


def check_amount(amount: float) -> float:
    """The pruned share must lie strictly between 0 and 1."""
    if not 0.0 < amount < 1.0:
        raise InvalidInput(f"--prune must be between 0 and 1 (a share of weights), got {amount}")
    return amount


def apply_magnitude_masks(model: nn.Module, amount: float) -> list[nn.Module]:
    """Mask the `amount` smallest-magnitude weights of every Linear and Conv2d layer (per layer).

    The masks stay attached (so fine-tuning keeps pruned weights at zero) until
    `remove_masks` bakes them into the weights.
    """
    check_amount(amount)
    layers: list[nn.Module] = [m for m in model.modules() if isinstance(m, PRUNABLE)]
    for layer in layers:
        torch_prune.l1_unstructured(layer, name="weight", amount=amount)  # type: ignore[no-untyped-call]  # torch stubs
    return layers


def remove_masks(layers: Sequence[nn.Module]) -> None:
    """Make the masked weights permanent zeros (plain parameters again)."""
    for layer in layers:
        torch_prune.remove(layer, "weight")  # type: ignore[no-untyped-call]  # torch stubs


def sparsity(model: nn.Module) -> float:
    """Share of exactly-zero weights over all Linear and Conv2d weights."""
    total, zeros = 0, 0
    for layer in model.modules():
        if isinstance(layer, PRUNABLE):
            total += layer.weight.numel()
            zeros += int((layer.weight == 0).sum())
    return zeros / total if total else 0.0


def _keep_count(size: int, amount: float) -> int:
    return max(1, round(size * (1.0 - amount)))


def _top_units(importance: torch.Tensor, keep: int) -> torch.Tensor:
    """Indices of the `keep` most important units, in their original order."""
    order: torch.Tensor = torch.sort(torch.topk(importance, keep).indices).values
    return order


def _unit_importance(incoming: torch.Tensor, outgoing: torch.Tensor) -> torch.Tensor:
    """Norm of the weights into each unit (rows of `incoming`) times out of it (`outgoing`)."""
    into = incoming.reshape(incoming.shape[0], -1).norm(dim=1)
    out_of = outgoing.transpose(0, 1).reshape(outgoing.shape[1], -1).norm(dim=1)
    product: torch.Tensor = into * out_of
    return product


def prune_mlp(model: MLP, spec: ModelSpec, amount: float) -> StructuredResult:
    """Remove `amount` of every hidden layer's units; return the smaller MLP and its spec."""
    check_amount(amount)
    linears = [m for m in model.layers if isinstance(m, nn.Linear)]
    keeps: list[torch.Tensor] = []
    for i, layer in enumerate(linears[:-1]):
        importance = _unit_importance(layer.weight.detach(), linears[i + 1].weight.detach())
        keeps.append(_top_units(importance, _keep_count(layer.out_features, amount)))
    new_spec = spec.model_copy(update={"hidden_sizes": [len(k) for k in keeps]})
    smaller = MLP(linears[0].in_features, linears[-1].out_features, new_spec)
    new_linears = [m for m in smaller.layers if isinstance(m, nn.Linear)]
    previous: torch.Tensor | None = None
    with torch.no_grad():
        for i, (old, new) in enumerate(zip(linears, new_linears, strict=True)):
            rows = keeps[i] if i < len(keeps) else torch.arange(old.out_features)
            weight = old.weight[rows]
            new.weight.copy_(weight if previous is None else weight[:, previous])
            new.bias.copy_(old.bias[rows])
            previous = rows
    kept = {f"hidden_{i}": k.tolist() for i, k in enumerate(keeps)}
    return StructuredResult(smaller.eval(), new_spec, kept)


def prune_cnn(model: CNN, spec: ModelSpec, amount: float) -> StructuredResult:
    """Remove `amount` of both conv layers' channels and of the dense layer's units."""
    check_amount(amount)
    conv1, conv2 = (m for m in model.features if isinstance(m, nn.Conv2d))
    dense, out = (m for m in model.head if isinstance(m, nn.Linear))
    c2 = conv2.out_channels
    dense_w = dense.weight.detach().reshape(dense.out_features, c2, -1)  # [dense, c2, positions]
    keep1 = _top_units(
        _unit_importance(conv1.weight.detach(), conv2.weight.detach()),
        _keep_count(conv1.out_channels, amount),
    )
    keep2 = _top_units(_unit_importance(conv2.weight.detach(), dense_w), _keep_count(c2, amount))
    keep_d = _top_units(
        _unit_importance(dense.weight.detach(), out.weight.detach()),
        _keep_count(dense.out_features, amount),
    )
    new_spec = spec.model_copy(
        update={"channels": (len(keep1), len(keep2)), "dense_size": len(keep_d)}
    )
    smaller = CNN(model.image_shape, out.out_features, new_spec)
    n_conv1, n_conv2 = (m for m in smaller.features if isinstance(m, nn.Conv2d))
    n_dense, n_out = (m for m in smaller.head if isinstance(m, nn.Linear))
    with torch.no_grad():
        n_conv1.weight.copy_(conv1.weight[keep1])
        _bias(n_conv1).copy_(_bias(conv1)[keep1])
        n_conv2.weight.copy_(conv2.weight[keep2][:, keep1])
        _bias(n_conv2).copy_(_bias(conv2)[keep2])
        n_dense.weight.copy_(dense_w[keep_d][:, keep2].reshape(len(keep_d), -1))
        n_dense.bias.copy_(dense.bias[keep_d])
        n_out.weight.copy_(out.weight[:, keep_d])
        n_out.bias.copy_(out.bias)
    kept = {"conv_1": keep1.tolist(), "conv_2": keep2.tolist(), "dense": keep_d.tolist()}
    return StructuredResult(smaller.eval(), new_spec, kept)


def _bias(conv: nn.Conv2d) -> torch.Tensor:
    if conv.bias is None:  # the zoo's convolutions always have one
        raise InvalidInput("structured pruning expects convolutions with a bias")
    return conv.bias


def prune_structured(model: nn.Module, spec: ModelSpec, amount: float) -> StructuredResult:
    """Structured pruning of a zoo model (mlp or cnn).

    Raises:
        InvalidInput: the model is a user's own builder, whose layout maas does not know.
    """
    if isinstance(model, MLP):
        return prune_mlp(model, spec, amount)
    if isinstance(model, CNN):
        return prune_cnn(model, spec, amount)
    raise InvalidInput(
        f"structured pruning supports the mlp and cnn models, not {spec.kind!r}; "
        "use --prune-kind unstructured"
    )
