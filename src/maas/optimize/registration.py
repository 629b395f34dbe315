"""Recording an optimized model as a new version of its model, and the outcome a command reports."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from maas.actors import AnyActor
from maas.errors import NotFound
from maas.optimize.candidates import Judged, Measured
from maas.optimize.source import SourceVersion, child_lineage
from maas.registry.store import Registry
from maas.registry.versions import ModelVersion

CARRIED_FILES = ("weights.safetensors", "spec.yaml", "history.json")


@dataclass(frozen=True)
class OptimizeOutcome:
    """What `maas optimize` did: the decision, why, and the version it registered (if any).

    Attributes:
        parent_ref: the version that was optimized.
        action: "quantize" or "prune".
        reason: one sentence: which variant won and why, or why nothing was registered.
        registered: the new version, or None when the parent was kept.
        parent: the parent's measured figures.
        candidates: every candidate's figures and gate result.
    """

    parent_ref: str
    action: str
    reason: str
    registered: ModelVersion | None
    parent: dict[str, Any]
    candidates: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what `--json` prints)."""
        return {
            "parent": self.parent_ref,
            "action": self.action,
            "reason": self.reason,
            "registered": self.registered.ref if self.registered else None,
            "metrics": dict(self.registered.metrics) if self.registered else None,
            "parent_figures": self.parent,
            "candidates": self.candidates,
        }


def measured_dict(m: Measured) -> dict[str, Any]:
    """A measured model's figures without its bytes."""
    return {
        "variant": m.variant,
        "precision": m.precision,
        "test_accuracy": m.test_accuracy,
        "size_bytes": m.size_bytes,
        "latency_ms_b1": m.latency_ms_b1,
        "latency_ms_b32": m.latency_ms_b32,
        "throughput_b32": m.throughput_b32,
    }


def child_metrics(judged: Judged, parent: Measured, parameters: float) -> dict[str, float]:
    """The metrics of an optimized version: its own figures and the parent's, measured together."""
    c = judged.candidate
    return {
        "test_accuracy": c.test_accuracy,
        "size_bytes": float(c.size_bytes),
        "latency_ms_b1": c.latency_ms_b1,
        "latency_ms_b32": c.latency_ms_b32,
        "throughput_b32": c.throughput_b32,
        "parameters": parameters,
        "speedup_vs_parent": judged.speedup,
        "size_ratio_vs_parent": judged.size_ratio,
        "accuracy_drop_points": judged.gate.drop_points,
        "parent_test_accuracy": parent.test_accuracy,
        "parent_size_bytes": float(parent.size_bytes),
        "parent_latency_ms_b1": parent.latency_ms_b1,
        "parent_throughput_b32": parent.throughput_b32,
    }


def parent_files(registry: Registry, parent: ModelVersion) -> dict[str, bytes]:
    """The parent's extra files that travel to an optimized child (float weights, spec, history)."""
    files = {}
    for name in CARRIED_FILES:
        try:
            files[name] = registry.read_file(parent, name)
        except NotFound:
            continue
    return files


def register_child(
    registry: Registry,
    source: SourceVersion,
    judged: Judged,
    parent: Measured,
    *,
    parameters: float,
    optimization: Mapping[str, Any],
    files: Mapping[str, bytes],
    lineage_updates: Mapping[str, Any] | None = None,
    actor: AnyActor = None,
) -> ModelVersion:
    """Register `judged.candidate` as the next version of the source's model."""
    lineage = child_lineage(source.version, dict(optimization))
    lineage["precision"] = judged.candidate.precision
    lineage.update(lineage_updates or {})
    mv = source.version
    return registry.register(
        mv.name,
        judged.candidate.onnx_bytes,
        signature=mv.signature,
        labels=mv.labels,
        metrics=child_metrics(judged, parent, parameters),
        lineage=lineage,
        files=files,
        actor=actor,
    )
