"""Measuring optimized candidates against their parent and choosing one by the objective.

Every candidate is judged on the parent's test split through onnxruntime (the accuracy gate) and
timed against the parent in the same process, interleaved (batch 1 and batch 32, one thread), so
speed is a ratio measured on this machine, never a guess.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from maas.evaluate.timing import compare_latency, open_session
from maas.optimize.gate import GateResult, check_accuracy

Objective = Literal["latency", "size"]
MIN_SPEEDUP = 1.05  # below this, "faster" is within the noise of a shared machine
TIMING_BATCHES = (1, 32)


@dataclass(frozen=True)
class Measured:
    """One model's accuracy, size and speed, measured in one run with its parent.

    Attributes:
        variant: what it is ("fp32", "int8-dynamic", "int8", "int8-compact", "int8-partial").
        precision: "fp32", "int8" or "int8-partial".
        onnx_bytes: the model.
        test_accuracy: accuracy on the parent's test split through onnxruntime.
        latency_ms_b1: median call time at batch 1.
        latency_ms_b32: median call time at batch 32.
        details: how it was made (calibration, excluded layers, ...).
    """

    variant: str
    precision: str
    onnx_bytes: bytes
    test_accuracy: float
    latency_ms_b1: float = math.nan
    latency_ms_b32: float = math.nan
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def size_bytes(self) -> int:
        """Size of the ONNX file."""
        return len(self.onnx_bytes)

    @property
    def throughput_b32(self) -> float:
        """Rows per second at batch 32."""
        return 32_000.0 / self.latency_ms_b32 if self.latency_ms_b32 > 0 else 0.0


@dataclass(frozen=True)
class Judged:
    """A candidate with its gate result and speed and size relative to the parent."""

    candidate: Measured
    gate: GateResult
    speedup: float
    size_ratio: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (no model bytes)."""
        c = self.candidate
        return {
            "variant": c.variant,
            "precision": c.precision,
            "test_accuracy": c.test_accuracy,
            "size_bytes": c.size_bytes,
            "latency_ms_b1": c.latency_ms_b1,
            "latency_ms_b32": c.latency_ms_b32,
            "throughput_b32": c.throughput_b32,
            "speedup": self.speedup,
            "size_ratio": self.size_ratio,
            "gate": self.gate.to_dict(),
            "details": c.details,
        }


@dataclass(frozen=True)
class Decision:
    """The chosen candidate (None: keep the parent) and why, in one sentence."""

    winner: Judged | None
    reason: str
    judged: tuple[Judged, ...]
    parent: Measured


def accuracy_of(model_bytes: bytes, x: np.ndarray, y: np.ndarray) -> float:
    """Test accuracy through onnxruntime."""
    session = open_session(model_bytes)
    probabilities = session.run(["probabilities"], {"input": x})[0]
    return float(np.mean(np.asarray(probabilities).argmax(-1) == y)) if len(y) else 0.0


def time_models(
    models: Sequence[Measured], rows: np.ndarray, runs_b1: int = 300, runs_b32: int = 60
) -> list[Measured]:
    """Fill in latency at batch 1 and 32, all models interleaved in one run."""
    sessions = {f"{i}:{m.variant}": open_session(m.onnx_bytes) for i, m in enumerate(models)}
    b1 = compare_latency(sessions, rows, 1, runs=runs_b1, rounds=5)
    b32 = compare_latency(sessions, rows, 32, runs=runs_b32, rounds=5)
    return [
        Measured(
            m.variant,
            m.precision,
            m.onnx_bytes,
            m.test_accuracy,
            latency_ms_b1=b1[key].p50_ms,
            latency_ms_b32=b32[key].p50_ms,
            details=m.details,
        )
        for key, m in zip(sessions, models, strict=True)
    ]


def speedup_of(parent: Measured, candidate: Measured) -> float:
    """Geometric mean of the speed-ups at batch 1 and batch 32 (above 1: faster)."""
    ratios = [
        parent.latency_ms_b1 / candidate.latency_ms_b1,
        parent.latency_ms_b32 / candidate.latency_ms_b32,
    ]
    return float(math.sqrt(ratios[0] * ratios[1]))


def judge(parent: Measured, candidates: Sequence[Measured], max_drop_points: float) -> list[Judged]:
    """Gate and compare every candidate with the parent."""
    return [
        Judged(
            candidate=c,
            gate=check_accuracy(parent.test_accuracy, c.test_accuracy, max_drop_points),
            speedup=speedup_of(parent, c),
            size_ratio=parent.size_bytes / c.size_bytes,
        )
        for c in candidates
    ]


def choose(parent: Measured, judged: Sequence[Judged], objective: Objective) -> Decision:
    """Pick the candidate the objective prefers among those that pass the gate.

    latency: the fastest candidate at least MIN_SPEEDUP times faster than the parent.
    size: the smallest candidate smaller than the parent.
    """
    passing = [j for j in judged if j.gate.passed]
    if not passing:
        worst = ", ".join(f"{j.candidate.variant}: {j.gate.describe()}" for j in judged)
        return Decision(
            None,
            f"keep fp32: no candidate passes the accuracy gate ({worst})",
            tuple(judged),
            parent,
        )
    if objective == "size":
        best = min(passing, key=lambda j: j.candidate.size_bytes)
        if best.size_ratio <= 1.0:
            return Decision(None, "keep fp32: no candidate is smaller", tuple(judged), parent)
        return Decision(
            best,
            f"{best.candidate.variant} wins on size: {best.size_ratio:.2f}x smaller "
            f"({best.candidate.size_bytes:,} vs {parent.size_bytes:,} bytes), "
            f"speed {best.speedup:.2f}x the parent's, {best.gate.describe()}",
            tuple(judged),
            parent,
        )
    best = max(passing, key=lambda j: j.speedup)
    if best.speedup < MIN_SPEEDUP:
        return Decision(
            None,
            f"keep fp32: int8 is not faster on this machine (best {best.candidate.variant} runs "
            f"at {best.speedup:.2f}x the parent's speed: batch 1 {best.candidate.latency_ms_b1:.3f}"
            f" vs {parent.latency_ms_b1:.3f} ms, batch 32 {best.candidate.latency_ms_b32:.3f} vs "
            f"{parent.latency_ms_b32:.3f} ms); use --objective size to trade speed for size",
            tuple(judged),
            parent,
        )
    return Decision(
        best,
        f"{best.candidate.variant} wins on latency: {best.speedup:.2f}x faster (batch 1 "
        f"{best.candidate.latency_ms_b1:.3f} vs {parent.latency_ms_b1:.3f} ms, batch 32 "
        f"{best.candidate.latency_ms_b32:.3f} vs {parent.latency_ms_b32:.3f} ms), "
        f"{best.gate.describe()}",
        tuple(judged),
        parent,
    )
