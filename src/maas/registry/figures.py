"""`VersionFigures`: the size, parameters, precision and speed of a version, as recorded.

Read from what registration stored: `size_bytes`, the `parameters` metric, `lineage.precision`
(set by `maas optimize`: `int8`, `int8-partial`; a version maas trained is `fp32`) and the speed
metrics `maas optimize` measures (median latency at batch 1 and 32, rows per second at 32).
Figures nobody recorded stay None: nothing is guessed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from maas.registry.versions import ModelVersion

TRAINED_PRECISION = "fp32"  # what `maas train` exports


@dataclass(frozen=True)
class VersionFigures:
    """What a version weighs and how fast it ran when it was measured.

    Attributes:
        ref: `name@version`.
        size_bytes: the ONNX artifact's size.
        parameters: trainable parameters (None: not recorded).
        precision: `fp32`, `int8` or `int8-partial` (None: not known, e.g. a user's ONNX file).
        latency_ms_b1: median call time at batch 1.
        latency_ms_b32: median call time at batch 32.
        throughput_b32: rows per second at batch 32.
        test_accuracy: accuracy on the held-out split.
    """

    ref: str
    size_bytes: int
    parameters: int | None
    precision: str | None
    latency_ms_b1: float | None
    latency_ms_b32: float | None
    throughput_b32: float | None
    test_accuracy: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def version_figures(mv: ModelVersion) -> VersionFigures:
    """The recorded figures of `mv`."""
    metrics = mv.metrics
    parameters = _metric(metrics, "parameters")
    return VersionFigures(
        ref=mv.ref,
        size_bytes=mv.size_bytes,
        parameters=None if parameters is None else int(parameters),
        precision=precision_of(mv),
        latency_ms_b1=_metric(metrics, "latency_ms_b1"),
        latency_ms_b32=_metric(metrics, "latency_ms_b32"),
        throughput_b32=_metric(metrics, "throughput_b32"),
        test_accuracy=_metric(metrics, "test_accuracy"),
    )


def precision_of(mv: ModelVersion) -> str | None:
    """`lineage.precision`, else fp32 for a version maas trained, else None."""
    recorded = mv.lineage.get("precision")
    if isinstance(recorded, str):
        return recorded
    return TRAINED_PRECISION if "spec" in mv.lineage else None


def _metric(metrics: dict[str, float], key: str) -> float | None:
    value = metrics.get(key)
    if value is None or not math.isfinite(value):
        return None
    return float(value)
