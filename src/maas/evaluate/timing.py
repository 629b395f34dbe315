"""Latency and throughput of ONNX models on this machine, measured in-process on onnxruntime.

Timings on a shared machine are noisy, so models that are compared run interleaved, round by
round, in one process: their ratios are meaningful even when the absolute numbers drift.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort

INPUT_NAME = "input"
WARMUP_RUNS = 5  # first runs allocate buffers and fill caches; never counted


@dataclass(frozen=True)
class LatencyStats:
    """Per-call latency of one model at one batch size.

    Attributes:
        batch: rows per call.
        runs: calls measured.
        p50_ms: median call time.
        p99_ms: 99th percentile call time.
        mean_ms: mean call time.
        throughput_rows_s: rows per second at the median call time.
        samples_ms: every measured call time, in order.
    """

    batch: int
    runs: int
    p50_ms: float
    p99_ms: float
    mean_ms: float
    throughput_rows_s: float
    samples_ms: tuple[float, ...] = ()

    def to_dict(self) -> dict[str, float]:
        """JSON-ready numbers (without the raw samples)."""
        return {
            "batch": float(self.batch),
            "runs": float(self.runs),
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "mean_ms": self.mean_ms,
            "throughput_rows_s": self.throughput_rows_s,
        }


def open_session(model_bytes: bytes, threads: int = 1) -> ort.InferenceSession:
    """A CPU onnxruntime session with `threads` intra-op threads and one inter-op thread."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # quantized graphs make onnxruntime warn about every QDQ pair
    return ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])


def batch_of(rows: np.ndarray, batch: int) -> np.ndarray:
    """`batch` rows taken cyclically from `rows` (so any batch size works on a small set)."""
    index = np.arange(batch) % len(rows)
    return np.ascontiguousarray(rows[index], dtype=np.float32)


def summarize(batch: int, samples_ms: list[float]) -> LatencyStats:
    """Percentiles and throughput of measured call times."""
    values = np.asarray(samples_ms, dtype=np.float64)
    p50 = float(np.percentile(values, 50))
    return LatencyStats(
        batch=batch,
        runs=len(values),
        p50_ms=p50,
        p99_ms=float(np.percentile(values, 99)),
        mean_ms=float(values.mean()),
        throughput_rows_s=batch * 1000.0 / p50 if p50 > 0 else 0.0,
        samples_ms=tuple(float(v) for v in values),
    )


def _time_calls(
    session: ort.InferenceSession, feed: dict[str, np.ndarray], runs: int
) -> list[float]:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, feed)
        samples.append((time.perf_counter() - started) * 1000.0)
    return samples


def compare_latency(
    sessions: Mapping[str, ort.InferenceSession],
    rows: np.ndarray,
    batch: int,
    *,
    runs: int = 200,
    rounds: int = 5,
) -> dict[str, LatencyStats]:
    """Time every session at one batch size, interleaved in `rounds` so drift hits all alike.

    Args:
        sessions: name -> session; every session takes input "input".
        rows: input rows (cycled to fill the batch).
        batch: rows per call.
        runs: calls per session in total (split over the rounds).
        rounds: how many times the sessions take turns.

    Returns:
        name -> latency statistics.
    """
    feed = {INPUT_NAME: batch_of(rows, batch)}
    for session in sessions.values():
        _time_calls(session, feed, WARMUP_RUNS)
    per_round = max(1, runs // max(1, rounds))
    samples: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(rounds):
        for name, session in sessions.items():
            samples[name] += _time_calls(session, feed, per_round)
    return {name: summarize(batch, values) for name, values in samples.items()}


def best_throughput(
    session: ort.InferenceSession,
    rows: np.ndarray,
    batches: tuple[int, ...] = (1, 8, 32, 128),
    runs: int = 30,
) -> LatencyStats:
    """The batch size (of `batches`) with the highest rows per second, and its statistics."""
    stats = [compare_latency({"m": session}, rows, b, runs=runs, rounds=1)["m"] for b in batches]
    return max(stats, key=lambda s: s.throughput_rows_s)
