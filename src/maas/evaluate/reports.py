"""Evaluating registered versions side by side: quality, calibration, speed, size and memory."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx

from maas.evaluate.data import EvalData, load_eval_data
from maas.evaluate.memory import measure_peak
from maas.evaluate.metrics import ClassificationReport, classification_report
from maas.evaluate.timing import LatencyStats, best_throughput, compare_latency, open_session
from maas.registry.refs import ModelRef
from maas.registry.store import Registry
from maas.registry.versions import ModelVersion

log = logging.getLogger(__name__)

PREDICT_BATCH = 512
LATENCY_RUNS = 300
QUANT_SUFFIXES = ("_scale", "_zero_point")


@dataclass(frozen=True)
class VersionEvaluation:
    """Everything measured for one version.

    Attributes:
        ref: NAME@VERSION.
        version: the registry record.
        data_origin: what the rows were.
        quality: accuracy, per-class scores, confusion matrix, calibration.
        latency_b1: per-call latency at batch 1 (p50, p99, samples).
        best_batch: statistics at the batch size with the highest throughput.
        size_bytes: ONNX file size.
        parameters: weights in the graph.
        precision: fp32, int8 or int8-partial.
        peak_memory_bytes: RSS growth while loading the model and predicting every row.
    """

    ref: str
    version: ModelVersion
    data_origin: str
    quality: ClassificationReport
    latency_b1: LatencyStats
    best_batch: LatencyStats
    size_bytes: int
    parameters: int
    precision: str
    peak_memory_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the same numbers the table and the HTML report show."""
        return {
            "ref": self.ref,
            "data": self.data_origin,
            "precision": self.precision,
            "size_bytes": self.size_bytes,
            "parameters": self.parameters,
            "peak_memory_bytes": self.peak_memory_bytes,
            "latency_ms_b1": {
                "p50": self.latency_b1.p50_ms,
                "p99": self.latency_b1.p99_ms,
                "mean": self.latency_b1.mean_ms,
                "runs": self.latency_b1.runs,
            },
            "throughput": {
                "best_batch": self.best_batch.batch,
                "rows_per_s": self.best_batch.throughput_rows_s,
                "p50_ms": self.best_batch.p50_ms,
            },
            **self.quality.to_dict(),
        }


@dataclass(frozen=True)
class EvaluationReport:
    """Several versions evaluated in one run (so their timings are comparable)."""

    versions: tuple[VersionEvaluation, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"versions": [v.to_dict() for v in self.versions]}


def count_onnx_parameters(model_bytes: bytes) -> int:
    """Weights and biases in a graph (quantization scales, zero points and constants excluded)."""
    model = onnx.load_from_string(model_bytes)
    total = 0
    for tensor in model.graph.initializer:
        if tensor.name.endswith(QUANT_SUFFIXES) or len(tensor.dims) == 0:
            continue
        total += int(np.prod(tensor.dims))
    return total


def precision_of(mv: ModelVersion) -> str:
    """The precision recorded at optimization time (fp32 for trained versions)."""
    return str(mv.lineage.get("precision", "fp32"))


def _predict(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    session = open_session(model_bytes)
    parts = [
        session.run(["probabilities"], {"input": x[i : i + PREDICT_BATCH]})[0]
        for i in range(0, len(x), PREDICT_BATCH)
    ]
    return np.concatenate(parts)


def evaluate_one(
    registry: Registry, ref: ModelRef, data: Path | None
) -> tuple[VersionEvaluation, np.ndarray]:
    """Quality, calibration, size and memory of one version, and the rows it was evaluated on.

    Speed is left empty: `evaluate_versions` measures it for all versions together.
    """
    mv = registry.get(ref.name, ref.ref)
    rows: EvalData = load_eval_data(mv, data)
    model_bytes = registry.read_artifact(mv)
    probabilities, memory = measure_peak(lambda: _predict(model_bytes, rows.x))
    quality = classification_report(probabilities, rows.y, mv.labels)
    empty = LatencyStats(1, 0, 0.0, 0.0, 0.0, 0.0)
    result = VersionEvaluation(
        ref=mv.ref,
        version=mv,
        data_origin=rows.origin,
        quality=quality,
        latency_b1=empty,
        best_batch=empty,
        size_bytes=len(model_bytes),
        parameters=count_onnx_parameters(model_bytes),
        precision=precision_of(mv),
        peak_memory_bytes=memory.delta_bytes,
    )
    return result, rows.x


def evaluate_versions(
    registry: Registry,
    refs: Sequence[ModelRef],
    data: Path | None = None,
    *,
    latency_runs: int = LATENCY_RUNS,
) -> EvaluationReport:
    """Evaluate versions side by side; latency is measured interleaved across all of them.

    Raises:
        ModelNotFound: a reference names nothing.
        InvalidInput / DataError: the evaluation data cannot be found or read.
    """
    evaluated = [evaluate_one(registry, ref, data) for ref in refs]
    results = [r for r, _ in evaluated]
    rows = {r.ref: x for r, x in evaluated}
    sessions = {r.ref: open_session(registry.read_artifact(r.version)) for r in results}
    latency: dict[str, LatencyStats] = {}
    # Versions with the same input width take turns in one interleaved run.
    for width in {x.shape[1:] for x in rows.values()}:
        group = {ref: s for ref, s in sessions.items() if rows[ref].shape[1:] == width}
        sample = rows[next(iter(group))]
        latency |= compare_latency(group, sample, 1, runs=latency_runs, rounds=5)
    finished = []
    for r in results:
        best = best_throughput(sessions[r.ref], rows[r.ref])
        finished.append(
            VersionEvaluation(
                r.ref,
                r.version,
                r.data_origin,
                r.quality,
                latency[r.ref],
                best,
                r.size_bytes,
                r.parameters,
                r.precision,
                r.peak_memory_bytes,
            )
        )
    log.info("evaluate.done", extra={"versions": [r.ref for r in finished]})
    return EvaluationReport(tuple(finished))
