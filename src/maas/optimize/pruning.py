"""Pruning a registered version: `prune_version` behind `maas optimize --prune`.

It rebuilds the parent's PyTorch model from its stored weights, prunes it (and fine-tunes it if
asked), exports and validates the result, measures it with the parent, gates it and registers it
with its new weights and spec.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from maas.actors import AnyActor
from maas.export.onnx import export_onnx
from maas.export.validate import validate_export
from maas.optimize import quantize as q
from maas.optimize.candidates import Measured, accuracy_of, judge, time_models
from maas.optimize.gate import PRUNE_MAX_DROP_POINTS, require_accuracy
from maas.optimize.prune import (
    apply_magnitude_masks,
    check_amount,
    prune_structured,
    remove_masks,
    sparsity,
)
from maas.optimize.registration import OptimizeOutcome, measured_dict, register_child
from maas.optimize.source import (
    SPEC_FILE,
    WEIGHTS_FILE,
    SourceVersion,
    load_source,
    rebuild_module,
    require_float,
    spec_yaml,
    weights_bytes,
)
from maas.pipeline import scale_splits
from maas.registry.store import Registry
from maas.train.data import Splits
from maas.train.loop import train_model
from maas.train.models import ServingModule, count_parameters
from maas.train.spec import ModelSpec, Spec

log = logging.getLogger(__name__)

PruneKind = Literal["structured", "unstructured"]


@dataclass(frozen=True)
class PruneRequest:
    """What `maas optimize --prune` asks for.

    Attributes:
        amount: share of weights (unstructured) or of units/channels (structured) removed.
        kind: structured (a smaller model) or unstructured (zeroed weights, same shapes).
        finetune_epochs: epochs of training afterwards on the parent's training split (0: none).
        max_drop_points: the accuracy gate, in points of test accuracy.
    """

    amount: float = 0.5
    kind: PruneKind = "structured"
    finetune_epochs: int = 0
    max_drop_points: float = PRUNE_MAX_DROP_POINTS


def _scaled_splits(source: SourceVersion) -> Splits:
    return scale_splits(source.splits, source.scaler)


def finetune(core: nn.Module, source: SourceVersion, epochs: int) -> list[dict[str, float]]:
    """Train `core` a few more epochs on the parent's splits (its optimizer, no early stopping)."""
    if epochs < 1:
        return []
    train_spec = source.spec.train.model_copy(update={"epochs": epochs, "early_stopping": None})
    with tempfile.TemporaryDirectory(prefix="maas-finetune-") as tmp:
        outcome = train_model(
            core,
            _scaled_splits(source),
            train_spec,
            seed=source.spec.seed,
            checkpoint_dir=Path(tmp),
            spec_hash=f"finetune-{source.spec.fingerprint()}",
        )
    return outcome.history


@dataclass(frozen=True)
class _Pruned:
    core: nn.Module
    spec: Spec
    details: dict[str, Any]
    history: list[dict[str, float]]


def _prune_core(registry: Registry, source: SourceVersion, request: PruneRequest) -> _Pruned:
    core = rebuild_module(registry, source).core
    model_spec = source.spec.model
    if request.kind == "structured":
        result = prune_structured(core, model_spec, request.amount)
        history = finetune(result.model, source, request.finetune_epochs)
        details: dict[str, Any] = {
            "before": _sizes(model_spec),
            "after": _sizes(result.spec),
            "kept_units": result.kept,
        }
        spec = source.spec.model_copy(update={"model": result.spec})
        return _Pruned(result.model, spec, details, history)
    layers = apply_magnitude_masks(core, request.amount)
    history = finetune(core, source, request.finetune_epochs)
    remove_masks(layers)
    return _Pruned(core, source.spec, {"sparsity": sparsity(core)}, history)


def _sizes(spec: ModelSpec) -> dict[str, Any]:
    if spec.kind == "cnn":
        return {"channels": list(spec.channels), "dense_size": spec.dense_size}
    return {"hidden_sizes": list(spec.hidden_sizes)}


def _export_pruned(pruned: _Pruned, source: SourceVersion) -> tuple[bytes, ServingModule]:
    module = ServingModule(pruned.core, source.scaler.offset, source.scaler.scale).eval()
    sample = torch.from_numpy(source.test_x[:2])
    onnx_bytes, _ = export_onnx(module, sample, pruned.spec.export.opset)
    validate_export(
        onnx_bytes,
        module,
        source.test_x,
        source.splits.test_y,
        parity_atol=pruned.spec.validate_.parity_atol,
        parity_samples=pruned.spec.validate_.parity_samples,
    )
    return q.strip_debug_metadata(onnx_bytes), module


def prune_version(
    registry: Registry,
    name: str,
    ref: str | int,
    request: PruneRequest,
    *,
    actor: AnyActor = None,
) -> OptimizeOutcome:
    """Prune a version (optionally fine-tune), export, validate, gate and register it.

    Raises:
        ModelNotFound: no such version.
        InvalidInput: no PyTorch weights, an unsupported model for structured pruning, or a
            bad amount.
        ValidationFailed: the pruned model fails export validation.
        AccuracyGateFailed: the pruned model lost more accuracy than allowed.
    """
    check_amount(request.amount)
    require_float(registry.get(name, ref), "prune")
    source = load_source(registry, name, ref)
    pruned = _prune_core(registry, source, request)
    onnx_bytes, module = _export_pruned(pruned, source)
    parent = Measured("fp32", "fp32", source.onnx_bytes, _test_accuracy(source.onnx_bytes, source))
    variant = f"pruned-{request.kind}"
    candidate = Measured(variant, "fp32", onnx_bytes, _test_accuracy(onnx_bytes, source))
    parent, candidate = time_models([parent, candidate], source.test_x)
    judged = judge(parent, [candidate], request.max_drop_points)[0]
    require_accuracy(judged.gate, f"the {request.kind} pruned model of {source.version.ref}")
    note = ""
    if "sparsity" in pruned.details:
        note = f"; {pruned.details['sparsity']:.0%} zero weights, dense shapes kept"
    reason = (
        f"{variant} ({request.amount:g}, {request.finetune_epochs} fine-tuning epochs{note}): "
        f"{judged.size_ratio:.2f}x smaller file, {judged.speedup:.2f}x the parent's speed, "
        f"{judged.gate.describe()}"
    )
    optimization = {
        "method": "prune",
        "kind": request.kind,
        "amount": request.amount,
        "finetune_epochs": request.finetune_epochs,
        "max_accuracy_drop_points": request.max_drop_points,
        "reason": reason,
        **pruned.details,
    }
    files = {
        WEIGHTS_FILE: weights_bytes(module),
        SPEC_FILE: spec_yaml(pruned.spec),
        "history.json": json.dumps(pruned.history, indent=1).encode(),
    }
    registered = register_child(
        registry,
        source,
        judged,
        parent,
        parameters=float(count_parameters(pruned.core)),
        optimization=optimization,
        files=files,
        lineage_updates={"spec": pruned.spec.to_dict()},
        actor=actor,
    )
    return OptimizeOutcome(
        parent_ref=source.version.ref,
        action="prune",
        reason=reason,
        registered=registered,
        parent=measured_dict(parent),
        candidates=[judged.to_dict()],
    )


def _test_accuracy(model_bytes: bytes, source: SourceVersion) -> float:
    return accuracy_of(model_bytes, source.test_x, source.splits.test_y)
